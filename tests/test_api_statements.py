"""The lists' statements compiled once per shape (vetclinic/db.py, integrations/api/selectors.py): each request
runs its own statement with its own values, and reads what the database holds now.

Every test sends several requests of one shape, so that the second and later ones run the
statement the first one compiled (and, on PostgreSQL, the prepared one after a few).
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from imaging.models import Study
from integrations.api.selectors import BROAD_SEARCH_PAGES, PATIENT_PAGES, SEARCH_PAGES
from patients.models import Patient
from tests.test_api_queries import api  # noqa: F401  (the fixture: an all-scopes client)
from vetclinic.db import CompiledQuery

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def compiled(settings):
    """These tests are of the compiling itself: on even where CI runs the rest with it off."""
    settings.DATABASE_COMPILE_ONCE = True


def ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_each_search_of_one_shape_finds_its_own_words(api, make_owner, make_patient):
    hartley, okafor = make_owner("Hartley"), make_owner("Okafor")
    biscuit = make_patient("Biscuit", owner=hartley)
    bramble = make_patient("Bramble", owner=okafor)
    rex = make_patient("Rex", owner=hartley)
    for _ in range(7):  # past psycopg's prepare_threshold: the prepared statement too
        assert ids(api.get("/api/v1/patients", {"search": "hartley"})) == [biscuit.pk, rex.pk]
        assert ids(api.get("/api/v1/patients", {"search": "okafor"})) == [bramble.pk]
        assert ids(api.get("/api/v1/patients", {"search": "hartley bis"})) == [biscuit.pk]
        assert ids(api.get("/api/v1/patients", {"search": "okafor bis"})) == []
        assert ids(api.get("/api/v1/patients", {"search": "nobody"})) == []


def test_a_record_changed_between_two_requests_of_one_shape_is_read_as_it_is_now(
    api, make_owner, make_patient
):
    owner = make_owner("Hartley")
    patient = make_patient("Biscuit", owner=owner)
    study = Study.objects.create(study_instance_uid="1.2.826.0.9.1", patient=patient, description="Thorax")
    for n in range(7):
        Patient.objects.filter(pk=patient.pk).update(name=f"Biscuit {n}")
        Study.objects.filter(pk=study.pk).update(description=f"Thorax {n}")
        assert (
            api.get("/api/v1/patients", {"search": "hartley"}).json()["results"][0]["name"] == f"Biscuit {n}"
        )
        assert api.get("/api/v1/patients").json()["results"][0]["name"] == f"Biscuit {n}"
        assert (
            api.get("/api/v1/studies", {"patient": patient.pk}).json()["results"][0]["description"]
            == f"Thorax {n}"
        )


def test_the_cursor_and_updated_since_take_each_requests_values(api, make_owner, make_patient):
    owner = make_owner("Hartley")
    made = [make_patient(f"Biscuit{n}", owner=owner) for n in range(6)]
    moment = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    for n, patient in enumerate(made):
        Patient.objects.filter(pk=patient.pk).update(updated=moment + timedelta(hours=n))
    for _ in range(3):
        for hours in range(6):
            since = (moment + timedelta(hours=hours)).isoformat()
            expected = [p.pk for p in made[hours:]]
            assert ids(api.get("/api/v1/patients", {"updated_since": since})) == expected
            assert ids(api.get("/api/v1/patients", {"updated_since": since, "search": "hartley"})) == expected
        page = api.get("/api/v1/patients", {"search": "hartley", "page_size": 2}).json()
        seen = [row["id"] for row in page["results"]]
        while page["next"]:
            page = api.get(page["next"]).json()
            seen += [row["id"] for row in page["results"]]
        assert seen == [p.pk for p in made]


def test_a_studies_filter_takes_each_requests_value(api, make_patient):
    patients = [make_patient(f"Biscuit{n}") for n in range(3)]
    studies = {
        p.pk: Study.objects.create(study_instance_uid=f"1.2.826.0.9.{p.pk}", patient=p) for p in patients
    }
    for _ in range(7):
        for patient in patients:
            assert ids(api.get("/api/v1/studies", {"patient": patient.pk})) == [studies[patient.pk].pk]


def test_a_compiled_statement_keeps_the_querys_own_constants_and_takes_the_filters_values(make_patient):
    rows = CompiledQuery(
        lambda filters: Patient.objects.filter(name__gte="B", pk__gte=filters["first"]).values("id")
    )
    made = [make_patient(name).pk for name in ("Apple", "Biscuit", "Cleo", "Dot")]
    for _ in range(3):
        for n, first in enumerate(made):
            assert [row["id"] for row in rows.run({"first": first})] == made[max(n, 1) :]


WORDS = [{"search": ("hartley",)}, {"search": ("hartley", "bis")}, {"search": ("bis", "har")}]


@pytest.mark.parametrize("pages, cases", [
    (PATIENT_PAGES, [{}, {"updated_since": True}]),
    (SEARCH_PAGES, [*WORDS, {"search": ("hartley",), "updated_since": True}]),
    (BROAD_SEARCH_PAGES, [*WORDS, {"search": ("b", "h")}, {"search": ("b",), "updated_since": True}]),
])  # fmt: skip
def test_a_compiled_page_is_the_rows_the_plain_queryset_reads(make_owner, make_patient, pages, cases):
    owner = make_owner("Hartley")
    made = [make_patient(f"Biscuit{n}", owner=owner) for n in range(5)]
    make_patient("Rex", owner=make_owner("Okafor"))
    for case in cases:
        filters = {**case, "updated_since": made[0].updated} if "updated_since" in case else case
        for position in (None, ("id__gt", made[1].pk), ("id__lt", made[3].pk)):
            ordering = ("-id",) if position and position[0] == "id__lt" else ("id",)
            lookup, value = position or (None, None)
            for _ in range(2):
                compiled = pages.run({**filters, "position": value}, shape=(ordering, lookup, 0, 3))
                plain = list(pages.queryset({**filters, "position": value}, shape=(ordering, lookup, 0, 3)))
                assert compiled == plain and compiled, (filters, position)


def test_a_search_with_a_short_word_finds_what_one_with_long_words_does(api, make_owner, make_patient):
    hartley = make_owner("Hartley")
    biscuit, bramble = make_patient("Biscuit", owner=hartley), make_patient("Bramble", owner=hartley)
    make_patient("Bisto", owner=make_owner("Okafor"))
    for _ in range(3):
        assert ids(api.get("/api/v1/patients", {"search": "hartley b"})) == [biscuit.pk, bramble.pk]
        assert ids(api.get("/api/v1/patients", {"search": "hartley bis"})) == [biscuit.pk]
        assert ids(api.get("/api/v1/patients", {"search": "ha bi"})) == [biscuit.pk]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_a_list_page_sent_a_few_times_is_a_prepared_statement_on_postgresql(api, make_patient):
    patient = make_patient("Biscuit")
    Study.objects.create(study_instance_uid="1.2.826.0.9.1", patient=patient)
    for _ in range(6):
        api.get("/api/v1/studies", {"patient": patient.pk})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ['%FROM "imaging_study"%']
        )
        assert cursor.fetchone()[0] == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_a_search_is_prepared_with_one_plan_for_every_word_and_a_short_word_is_not_on_postgresql(
    api, make_owner, make_patient
):
    """integrations/api/selectors.py says why: a search with specific words is one prepared
    statement, planned once (a generic plan) whatever the words; one with a short word is
    planned for its words each time and not kept."""
    make_patient("Biscuit", owner=make_owner("Hartley"))
    make_patient("Rex", owner=make_owner("Okafor"))
    for _ in range(7):
        assert len(ids(api.get("/api/v1/patients", {"search": "hartley"}))) == 1
        assert len(ids(api.get("/api/v1/patients", {"search": "okafor"}))) == 1
        assert len(ids(api.get("/api/v1/patients", {"search": "ok"}))) == 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%patients_searchterm%"],
        )
        prepared = cursor.fetchall()
    assert len(prepared) == 1 and "ANY(ARRAY(" in prepared[0][0], prepared  # the specific words' form only
    _, generic, custom = prepared[0]
    assert custom == 0 and generic >= 8, prepared  # run 14 times, the first few before preparing
