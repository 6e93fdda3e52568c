from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from patients.models import (
    Owner,
    OwnerExternalId,
    Ownership,
    Patient,
    PatientExternalId,
    SearchTerm,
    Visit,
    WeightRecord,
)
from patients.selectors import patient_by_external_id, patient_search
from patients.services import (
    owner_upsert,
    ownership_remove,
    ownership_set,
    patient_merge,
    patient_upsert,
    visit_create,
    visit_update,
    weight_record,
)
from vetclinic.audit.models import AuditEntry, Channel
from vetclinic.audit.services import Actor

pytestmark = pytest.mark.django_db


def entries(instance):
    return list(
        AuditEntry.objects.filter(object_id=str(instance.pk), object_type__model=instance._meta.model_name)
        .order_by("id")
        .values_list("action", flat=True)
    )


def test_owner_upsert_with_an_external_id_is_idempotent(actor):
    fields = {"family_name": "Hartley", "given_name": "Jane", "phone": "01632 960123"}
    first = owner_upsert(actor=actor, fields=fields, external=("vetspace", "C-77"))
    again = owner_upsert(actor=actor, fields=fields, external=("vetspace", "C-77"))

    assert again.pk == first.pk
    assert Owner.objects.count() == 1
    assert OwnerExternalId.objects.get().value == "C-77"
    assert entries(first) == ["create", "external_id_add"]


def test_owner_upsert_records_each_changed_field_with_who_and_channel(staff):
    actor = Actor.for_user(staff["front desk"])
    owner = owner_upsert(actor=actor, fields={"family_name": "Hartley", "phone": "01632 960123"})
    owner_upsert(actor=actor, owner=owner, fields={"family_name": "Hartley-Smith", "phone": "01632 960123"})

    update = AuditEntry.objects.filter(action="update").get()
    assert update.changes == {"family_name": ["Hartley", "Hartley-Smith"]}
    assert update.user == staff["front desk"]
    assert update.channel == Channel.UI
    assert Owner.objects.get().family_name == "Hartley-Smith"


def test_an_unknown_field_is_refused_before_anything_is_written(actor):
    with pytest.raises(TypeError, match="unknown fields: nickname"):
        owner_upsert(actor=actor, fields={"family_name": "Hartley", "nickname": "Jay"})
    assert Owner.objects.count() == 0


def test_patient_upsert_assigns_a_patient_id_from_the_prefix_and_key(make_patient, settings):
    settings.PATIENT_ID_PREFIX = "VP"
    patient = make_patient()
    assert patient.patient_id == f"VP{patient.pk:06d}"


def test_patient_upsert_keeps_a_given_patient_id_and_avoids_collisions(make_patient, settings):
    settings.PATIENT_ID_PREFIX = "P"
    first = make_patient(patient_id="OLD-1")
    # A patient ID typed in by hand that happens to look like a generated one.
    squatter = make_patient(name="Squatter", patient_id=f"P{first.pk + 2:06d}")
    third = make_patient(name="Third")

    assert first.patient_id == "OLD-1"
    assert third.pk == first.pk + 2
    assert third.patient_id == f"P{third.pk:06d}-2"
    assert squatter.patient_id != third.patient_id


def test_patient_upsert_is_idempotent_on_the_external_id(actor, dog, labrador, make_owner):
    owner = make_owner()
    fields = {"name": "Biscuit", "species": dog, "breed": labrador, "sex": "M", "neutered": "ALTERED"}
    first = patient_upsert(
        actor=actor, fields=fields, external=("vetspace", "P-1"), owner=owner, weight_kg="31.4"
    )
    audit_count = AuditEntry.objects.count()
    again = patient_upsert(
        actor=actor, fields=fields, external=("vetspace", "P-1"), owner=owner, weight_kg="31.4"
    )

    assert again.pk == first.pk
    assert Patient.objects.count() == 1
    assert WeightRecord.objects.get().kg == Decimal("31.400")
    assert Ownership.objects.get().is_primary
    assert AuditEntry.objects.count() == audit_count


def test_patient_upsert_refuses_a_breed_of_another_species(actor, cat, labrador):
    with pytest.raises(ValidationError) as error:
        patient_upsert(actor=actor, fields={"name": "Pepper", "species": cat, "breed": labrador})
    assert "breed" in error.value.message_dict
    assert Patient.objects.count() == 0
    assert AuditEntry.objects.count() == 0


def test_a_microchip_belongs_to_one_living_patient(make_patient):
    make_patient(microchip="985141000123456")
    with pytest.raises(ValidationError) as error:
        make_patient(name="Other", microchip="985141000123456")
    assert "microchip" in str(error.value).lower()
    assert Patient.objects.count() == 1


def test_an_update_is_refused_a_microchip_another_animal_has(actor, make_patient):
    make_patient(microchip="985141000123456")
    other = make_patient(name="Other")
    with pytest.raises(ValidationError) as error:
        patient_upsert(actor=actor, patient=other, fields={"microchip": "985141000123456"})
    assert "microchip" in str(error.value).lower()
    assert Patient.objects.get(pk=other.pk).microchip == ""


def test_an_update_validates_what_it_changes_and_does_not_check_the_rest_again(actor, make_patient, labrador):
    patient = make_patient(microchip="985141000123456", breed=labrador)
    with pytest.raises(ValidationError) as error:
        patient_upsert(actor=actor, patient=Patient.objects.get(pk=patient.pk), fields={"sex": "Z"})
    assert "sex" in error.value.message_dict
    # A new name: no question about the species, the breed or the microchip, which stay.
    with CaptureQueriesContext(connection) as queries:
        patient_upsert(actor=actor, patient=Patient.objects.get(pk=patient.pk), fields={"name": "Biscuit II"})
    asked = [q["sql"] for q in queries.captured_queries]
    assert not [
        sql for sql in asked if "patients_species" in sql or "patients_breed" in sql or "_check" in sql
    ], asked
    assert Patient.objects.get(pk=patient.pk).name == "Biscuit II"


def test_the_first_owner_is_primary_and_primary_can_move(actor, make_owner, make_patient):
    jane, john = make_owner(given_name="Jane"), make_owner(given_name="John")
    patient = make_patient(owner=jane)
    ownership_set(actor=actor, patient=patient, owner=john, role=Ownership.Role.CO_OWNER)

    assert patient.primary_owner == jane
    ownership_set(actor=actor, patient=patient, owner=john, role=Ownership.Role.CO_OWNER, primary=True)
    patient = Patient.objects.get(pk=patient.pk)
    assert patient.primary_owner == john
    assert Ownership.objects.filter(patient=patient, is_primary=True).count() == 1


def test_the_primary_owner_cannot_be_removed_while_others_remain(actor, make_owner, make_patient):
    jane, john = make_owner(given_name="Jane"), make_owner(given_name="John")
    patient = make_patient(owner=jane)
    ownership_set(actor=actor, patient=patient, owner=john)

    with pytest.raises(ValidationError):
        ownership_remove(actor=actor, patient=patient, owner=jane)
    ownership_remove(actor=actor, patient=patient, owner=john)
    assert list(patient.owners.all()) == [jane]
    assert list(patient_search(query="hartley john")) == []


def test_the_same_weight_on_the_same_day_is_recorded_once(actor, make_patient):
    patient = make_patient()
    weight_record(actor=actor, patient=patient, kg="12.5", measured_on=date(2026, 11, 1))
    weight_record(actor=actor, patient=patient, kg=Decimal("12.500"), measured_on=date(2026, 11, 1))
    weight_record(actor=actor, patient=patient, kg="12.9", measured_on=date(2026, 11, 20))

    assert patient.weights.count() == 2
    assert patient.current_weight == Decimal("12.900")
    with pytest.raises(ValidationError):
        weight_record(actor=actor, patient=patient, kg="0")


def test_a_visit_from_an_external_system_is_created_once(actor, make_patient):
    patient = make_patient()
    when = datetime(2026, 11, 23, 9, tzinfo=UTC)
    first = visit_create(actor=actor, patient=patient, starts_at=when, reason="Lame", external=("pms", "V9"))
    again = visit_create(actor=actor, patient=patient, starts_at=when, reason="Lame", external=("pms", "V9"))
    visit_update(actor=actor, visit=first, fields={"status": Visit.Status.ARRIVED})

    assert again.pk == first.pk
    assert Visit.objects.get().status == Visit.Status.ARRIVED
    assert entries(first) == ["create", "update"]


def test_merge_moves_everything_and_keeps_the_duplicate_as_an_alias(
    actor, make_owner, make_patient, labrador
):
    jane, john = make_owner(given_name="Jane"), make_owner(given_name="John")
    target = make_patient(owner=jane)
    source = make_patient(
        owner=john, breed=labrador, microchip="985141000123456", birth_date=date(2019, 4, 2)
    )
    ownership_set(actor=actor, patient=source, owner=jane, role=Ownership.Role.AGENT)
    PatientExternalId.objects.create(patient=source, system="vetspace", value="P-1")
    visit_create(actor=actor, patient=source, reason="Vaccination")
    weight_record(actor=actor, patient=source, kg="30")
    old_id = source.patient_id

    patient_merge(actor=actor, source=source, target=target)

    source.refresh_from_db()
    target = Patient.objects.get(pk=target.pk)
    assert source.merged_into == target
    assert Visit.objects.get().patient == target
    assert WeightRecord.objects.get().patient == target
    assert PatientExternalId.objects.get().patient == target
    assert set(target.owners.all()) == {jane, john}
    assert target.primary_owner == jane
    assert Ownership.objects.filter(patient=source).count() == 0
    # Empty details of the survivor are filled from the duplicate.
    assert (target.breed, target.microchip, target.birth_date) == (
        labrador,
        "985141000123456",
        date(2019, 4, 2),
    )
    # The old patient ID and the external id still lead to the survivor.
    assert list(patient_search(query=old_id)) == [target]
    assert patient_by_external_id(system="vetspace", value="P-1") == target
    assert not SearchTerm.objects.filter(patient=source).exists()
    assert entries(source)[-1] == "merged_into"
    assert AuditEntry.objects.filter(action="merge", object_id=str(target.pk)).get().changes["merged"][
        1
    ] == str(source)


@pytest.mark.parametrize("case", ["self", "already merged", "other species"])
def test_merge_refuses_what_cannot_be_merged(actor, make_patient, cat, case):
    target = make_patient()
    source = {
        "self": target,
        "already merged": make_patient(name="Gone"),
        "other species": make_patient(name="Pepper", species=cat),
    }[case]
    if case == "already merged":
        patient_merge(actor=actor, source=source, target=make_patient(name="Third"))
    audit_count = AuditEntry.objects.count()

    with pytest.raises(ValidationError):
        patient_merge(actor=actor, source=source, target=target)
    assert AuditEntry.objects.count() == audit_count


def test_an_update_by_the_external_id_of_a_merged_patient_reaches_the_survivor(actor, make_patient, dog):
    source, target = make_patient(name="Bisc"), make_patient(name="Biscuit")
    PatientExternalId.objects.create(patient=source, system="vetspace", value="P-1")
    patient_merge(actor=actor, source=source, target=target)

    updated = patient_upsert(
        actor=actor,
        fields={"name": "Biscuit", "species": dog, "colour": "yellow"},
        external=("vetspace", "P-1"),
    )
    assert updated.pk == target.pk
    assert Patient.objects.get(pk=target.pk).colour == "yellow"


def test_an_external_id_cannot_be_given_to_a_second_record(actor, make_owner):
    owner_upsert(actor=actor, fields={"family_name": "Hartley"}, external=("vetspace", "C-77"))
    other = make_owner("Okafor")
    with pytest.raises(ValidationError, match="vetspace id C-77 already belongs to Hartley"):
        owner_upsert(
            actor=actor, owner=other, fields={"family_name": "Okafor"}, external=("vetspace", "C-77")
        )
    assert OwnerExternalId.objects.get().owner.family_name == "Hartley"
