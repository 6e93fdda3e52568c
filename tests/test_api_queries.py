"""The API's lists cost a fixed number of queries, whatever the page size (no N+1).

Every related record a list shows (owners, external ids, weights, breeds, an order's studies,
a study's series and instance counts) is there for each row, so that a query per row would
show up as a count that grows from page_size=5 to page_size=50.
"""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from imaging.models import Instance, Series, Study
from integrations.api.clients import api_client_create
from patients.services import ownership_set, weight_record
from tests.conftest import CLINIC_NOW

pytestmark = pytest.mark.django_db

ROWS = 55  # more than the larger page


@pytest.fixture
def api(actor):
    _, key = api_client_create(actor=actor, name="Acme PMS", scopes=["*"], rate_limit=10_000)
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return http


@pytest.fixture(scope="module")
def clinic(django_db_setup, django_db_blocker):
    """ROWS animals, each with two owners (external ids on both), a breed, a weight, an
    external id, an order, and a study of that order with two series of two instances.

    Built once for the module (some 3 s, 4,000 statements), as Django's TestCase.setUpTestData
    does: in a transaction that is rolled back after the module's last test, each test's own
    transaction a savepoint inside it, so no test sees another's writes."""
    from imaging.models import Modality, Procedure
    from imaging.orders.services import order_create
    from patients.models import Breed
    from patients.services import owner_upsert, patient_upsert
    from vetclinic.audit.services import Actor

    with django_db_blocker.unblock(), override_settings(CLOCK_NOW=CLINIC_NOW), transaction.atomic():
        actor = Actor.system("tests")
        labrador = Breed.objects.select_related("species").get(scheme="SCT", code="62137007")
        station = Modality.objects.create(
            ae_title="DRROOM", host="127.0.0.1", modality_type="DX", station_name="DR1"
        )
        procedure = Procedure.objects.get(code="DX-THX2")
        start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
        for n in range(ROWS):
            owner = owner_upsert(
                actor=actor, fields={"family_name": f"Hartley{n}", "mobile": f"07700 9{n:05d}"}
            )
            patient = patient_upsert(
                actor=actor, owner=owner,
                fields={"name": f"Biscuit{n}", "species": labrador.species, "breed": labrador,
                        "microchip": f"985141{n:09d}"},
            )  # fmt: skip
            co_owner = owner_upsert(actor=actor, fields={"family_name": f"Okafor{n}"})
            ownership_set(actor=actor, patient=patient, owner=co_owner, role="co-owner", primary=False)
            owner.external_ids.create(system="api:Acme PMS", value=f"O-{n}")
            patient.external_ids.create(system="api:Acme PMS", value=f"P-{n}")
            weight_record(actor=actor, patient=patient, kg="30.5")
            order = order_create(actor=actor, patient=patient, procedure=procedure, station=station,
                                 scheduled_start=start + timedelta(minutes=15 * n))  # fmt: skip
            study = Study.objects.create(study_instance_uid=f"1.2.826.0.1.{n}", patient=patient, order=order, link="order",
                                         accession_number=order.accession_number)  # fmt: skip
            for s in range(2):
                series = Series.objects.create(study=study, series_instance_uid=f"1.2.826.0.1.{n}.{s}", modality="DX",
                                               thumbnail_key=f"thumbs/{n}-{s}.png" if s else "")  # fmt: skip
                for i in range(2):
                    Instance.objects.create(series=series, sop_instance_uid=f"1.2.826.0.1.{n}.{s}.{i}", sop_class_uid="1.2",
                                            transfer_syntax_uid="1.2", file_size=10, storage_key=f"k/{n}/{s}/{i}")  # fmt: skip
        yield
        transaction.set_rollback(True)


def queries_for(api, url, page_size):
    path, _, query = url.partition("?")  # (the test client drops a path's query when given data)
    with CaptureQueriesContext(connection) as captured:
        response = api.get(path, {**dict(parse_qsl(query)), "page_size": page_size})
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == page_size  # the page is full: every row was there to cost
    return len(captured.captured_queries)


@pytest.mark.parametrize("url", ["/api/v1/patients", "/api/v1/owners", "/api/v1/orders", "/api/v1/studies"])
def test_a_list_costs_the_same_queries_for_5_rows_as_for_50(api, clinic, url):
    api.get(url, {"page_size": 1})  # once first: the client's last_used stamp, the content types
    small, large = queries_for(api, url, 5), queries_for(api, url, 50)
    assert small == large, f"{url}: {small} queries for 5 rows, {large} for 50"


def test_a_search_costs_the_same_queries_for_5_rows_as_for_50(api, clinic):
    queries_for(api, "/api/v1/patients?search=biscuit", 1)
    small = queries_for(api, "/api/v1/patients?search=biscuit", 5)
    large = queries_for(api, "/api/v1/patients?search=biscuit", 50)
    assert small == large, f"search: {small} queries for 5 rows, {large} for 50"


@pytest.mark.parametrize("url", ["/api/v1/patients", "/api/v1/patients?search=hartley", "/api/v1/studies"])
def test_a_patient_or_study_page_is_one_statement(api, clinic, url):
    """The page's rows and every related record in one query (integrations/api/rows.py); the
    client's key verified a moment ago is not looked up again."""
    queries_for(api, url, 1)
    assert queries_for(api, url, 50) == 1
