"""vetclinic/db.py: a compiled query gives what its queryset gives, for any values; the
services' savepoints; each process's database options."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from patients.models import Owner, Patient, WeightRecord
from patients.services import owner_upsert, patient_upsert, weight_record
from vetclinic.db import CompiledQuery, RowsById

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def compiled(settings):
    """These tests are of the compiling itself: compiled, without the check the suite runs with."""
    settings.DATABASE_COMPILE_ONCE = True


def test_a_compiled_query_gives_what_its_queryset_gives_for_each_value(actor, make_patient):
    biscuit = make_patient("Biscuit")
    pepper = make_patient("Pepper")
    for patient, value in ((biscuit, "PET-1"), (pepper, "PET-2'; DROP TABLE patients_patient; --")):
        patient_upsert(actor=actor, patient=patient, fields={}, external=("vetspace", value))
    by_id = CompiledQuery(
        lambda system, value: Patient.objects.filter(
            external_ids__system=system, external_ids__value=value
        ).order_by("pk"),
    )
    for system, value in (("vetspace", "PET-1"), ("vetspace", "PET-2'; DROP TABLE patients_patient; --"),
                          ("vetspace", "PET-3"), ("other", "PET-1")):  # fmt: skip
        expected = list(
            Patient.objects.filter(external_ids__system=system, external_ids__value=value).order_by("pk")
        )
        found = by_id.run(system, value)
        assert found == expected
        assert [vars(p) | {"_state": None} for p in found] == [vars(p) | {"_state": None} for p in expected]
    assert by_id.first("vetspace", "PET-1").name == "Biscuit"
    assert by_id.first("vetspace", "nobody") is None
    assert list(by_id._shapes.values())[0] is not False  # it was compiled, not run as a plain queryset


def test_dates_and_decimals_are_passed_as_the_database_wants_them(actor, make_patient):
    """A date is adapted as Django adapts it (a string on SQLite), in whatever order Django put
    the parameters (it sorts filter keywords)."""
    biscuit = make_patient("Biscuit")
    weight_record(actor=actor, patient=biscuit, kg="12.5", measured_on=date(2026, 3, 1))
    weight_record(actor=actor, patient=biscuit, kg="12.5", measured_on=date(2026, 3, 2))
    on = CompiledQuery(
        lambda patient_id, kg, day: WeightRecord.objects.filter(
            patient_id=patient_id, kg=kg, measured_on=day
        ),
    )
    [record] = on.run(biscuit.pk, Decimal("12.500"), date(2026, 3, 2))
    assert (record.kg, record.measured_on) == (Decimal("12.500"), date(2026, 3, 2))
    assert on.run(biscuit.pk, Decimal("12.500"), date(2026, 3, 3)) == []
    assert on.run(biscuit.pk, Decimal("12.4"), date(2026, 3, 1)) == []


def test_what_cannot_be_compiled_safely_runs_as_its_plain_queryset(actor, make_patient):
    make_patient("Biscuit", owner=owner_upsert(actor=actor, fields={"family_name": "Hartley"}))
    joined = CompiledQuery(lambda pk: Patient.objects.select_related("species").filter(pk__gte=pk))
    assert [p.species.code for p in joined.run(1)] == [p.species.code for p in Patient.objects.all()]
    # A value Django changes on the way in (icontains: '%art%') cannot be told from a constant.
    containing = CompiledQuery(lambda name: Owner.objects.filter(family_name__icontains=name))
    assert [o.family_name for o in containing.run("ART")] == ["Hartley"]
    assert [o.family_name for o in containing.run("okafor")] == []
    assert set(joined._shapes.values()) == set(containing._shapes.values()) == {False}


def test_rows_by_id_come_in_the_order_of_the_ids_asked_for(make_patient):
    made = [make_patient(name).pk for name in ("Biscuit", "Pepper", "Rex")]
    rows = RowsById(lambda condition: Patient.objects.filter(condition).values("id", "name"))
    for ids in ([made[2], made[0]], made, [made[1], -5]):
        assert [row["id"] for row in rows.rows(ids)] == [i for i in ids if i > 0]
    assert rows.rows([made[1]]) == [{"id": made[1], "name": "Pepper"}]


def test_with_compile_once_off_every_call_runs_its_plain_queryset(settings, make_patient):
    settings.DATABASE_COMPILE_ONCE = False
    make_patient("Biscuit")
    by_name = CompiledQuery(lambda name: Patient.objects.filter(name=name))
    assert [p.name for p in by_name.run("Biscuit")] == ["Biscuit"]
    assert by_name._shapes == {}


def savepoints_in(queries):
    return [q["sql"] for q in queries.captured_queries if q["sql"].upper().startswith("SAVEPOINT")]


def test_a_service_opens_a_savepoint_inside_a_transaction_unless_its_caller_says_not_to(actor):
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            owner_upsert(actor=actor, fields={"family_name": "Hartley"})
        assert len(savepoints_in(queries)) == 1
        with CaptureQueriesContext(connection) as queries:
            owner_upsert(actor=actor, fields={"family_name": "Marsh"}, savepoints=False)
        assert savepoints_in(queries) == []
    assert sorted(Owner.objects.values_list("family_name", flat=True)) == ["Hartley", "Marsh"]


POSTGRESQL = {"ENGINE": "django.db.backends.postgresql", "NAME": "vetpacs", "CONN_MAX_AGE": 0, "OPTIONS": {}}


def test_each_process_gets_the_database_options_settings_declare_for_its_role():
    from imaging.dicom.net.ae import MAX_ASSOCIATIONS
    from vetclinic.backends import database_for_process

    web, hl7, dicom = (database_for_process(POSTGRESQL, role) for role in ("web", "hl7", "dicom"))
    assert (
        "server_side_binding" not in web["OPTIONS"]
        and "pool" not in web["OPTIONS"]
        and web["CONN_MAX_AGE"] == 0
    )
    assert (hl7["CONN_MAX_AGE"], hl7["OPTIONS"]["server_side_binding"], "pool" in hl7["OPTIONS"]) == (
        None,
        True,
        False,
    )
    assert (dicom["CONN_MAX_AGE"], dicom["CONN_HEALTH_CHECKS"], dicom["OPTIONS"]["server_side_binding"]) == (
        0,
        True,
        True,
    )
    # Two connections an association (its reactor's thread and its DUL's), as many as one process serves.
    assert dicom["OPTIONS"]["pool"]["max_size"] == 2 * MAX_ASSOCIATIONS
    assert POSTGRESQL["OPTIONS"] == {}  # the declared settings are not changed in place


def test_check_mode_raises_when_a_compiled_statement_gives_other_rows(settings, make_patient):
    """DATABASE_COMPILE_ONCE=check, as the suite runs: a compiled statement whose rows differ
    from its queryset's fails the call. Here the statement is made wrong on purpose."""
    from vetclinic.db import CompiledQueryDiffers, _Statement

    settings.DATABASE_COMPILE_ONCE = "check"
    make_patient("Biscuit")
    make_patient("Pepper")
    by_name = CompiledQuery(lambda name: Patient.objects.filter(name=name).values("name"))
    assert by_name.run("Biscuit") == [{"name": "Biscuit"}]  # the same rows both ways: no error
    [statement] = by_name._shapes.values()
    assert isinstance(statement, _Statement)
    statement.sql = statement.sql.replace(" = %s", " <> %s")
    with pytest.raises(CompiledQueryDiffers, match="Pepper"):
        by_name.run("Biscuit")
    settings.DATABASE_COMPILE_ONCE = True  # off the check, the wrong statement's rows come back
    assert by_name.run("Biscuit") == [{"name": "Pepper"}]
