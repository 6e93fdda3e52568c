"""A real Celery worker, on the configured broker (files by default, Redis in CI)."""

from django.core.management import call_command

from patients.models import SearchTerm
from patients.selectors import patient_search
from tests import brokers
from tests.conftest import wait_for

private_broker = brokers.private_broker  # a fixture


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


def test_a_worker_holding_a_delayed_task_rides_out_a_broker_outage_and_indexes_what_comes_after(
    reference_data, private_broker, celery_worker_start, storage_root
):
    """The worker holds a task queued with a countdown (as thumbnails and webhook retries are)
    when Redis dies; Redis comes back empty. The worker must reconnect, and index an object
    queued after that, without anyone restarting it."""
    from imaging.models import Instance
    from tests.studies import stored_object

    worker = celery_worker_start("--beat", "--schedule", str(storage_root.parent / "beat-schedule"))
    wait_for(lambda: "ready." in worker.log.read_text(), timeout=60, message="the worker to start")
    private_broker.send("imaging.tasks.storage_sweep", countdown=600)
    wait_for(lambda: "received" in worker.log.read_text(), message="the worker to hold the delayed task")

    private_broker.server.kill()
    wait_for(lambda: "Connection to broker lost" in worker.log.read_text(), message="the worker to notice")
    private_broker.server.start()

    ds, key, size = stored_object(study_uid="1.2.3.4.1", series_uid="1.2.3.4.1.1", name="Hartley^Biscuit",
                                  patient_id="", species="Canis lupus familiaris")  # fmt: skip
    private_broker.send("imaging.tasks.instances_ingest", [{"storage_key": key}])

    instance = wait_for(lambda: Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).first(),
                        message="the object queued after the outage to be indexed")  # fmt: skip
    assert instance.storage_key == key
    assert worker.poll() is None, worker.log.read_text()[-3000:]
