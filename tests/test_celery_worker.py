"""A real Celery worker, on the configured broker (files by default, Redis in CI)."""
from django.core.management import call_command

from patients.models import SearchTerm
from patients.selectors import patient_search
from tests.conftest import wait_for


def test_a_real_worker_rebuilds_the_search_index_queued_by_search_reindex(
    reference_data, make_owner, make_patient, celery_worker
):
    owner = make_owner(given_name="Jane", phone="01632 960123")
    patients = [make_patient(f"Dog {n}", owner=owner) for n in range(3)]
    SearchTerm.objects.all().delete()  # as after a bulk import that bypassed the services
    assert list(patient_search(query="hartley")) == []

    call_command("search_reindex", "--chunk", "2")  # commits at once: this test is transactional

    found = wait_for(lambda: list(patient_search(query="hartley")) if SearchTerm.objects.filter(owner=owner).exists() else None,
                     message="the worker to rebuild the index")  # fmt: skip
    assert [p.pk for p in found] == [p.pk for p in patients]
    assert celery_worker.poll() is None  # still running: the work was done by the worker
