"""Inbound HL7 handlers through message_receive (no socket): the fields PMS send, mapped."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrations.hl7.inbound import message_receive
from integrations.models import HL7Message
from patients.models import CodeMapping, Owner, Patient, UnmappedCode, Visit
from tests import hl7_samples as samples
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.django_db


def receive(text, peer="127.0.0.1:5000"):
    ack = message_receive(text.encode(), peer).decode()
    return {line[:3]: line.split("|") for line in ack.strip("\r").split("\r")}


def test_a_pms_code_maps_through_the_crosswalk_and_strain_is_kept_as_breed_text(dog):
    CodeMapping.objects.create(system="L", kind="species", external_code="K9", species=dog)
    ack = receive(samples.adt("A04", "X1", species="K9^Dog^L", breed="", strain="^Working cocker"))
    assert ack["MSA"][1] == "AA", ack
    patient = Patient.objects.get()
    assert (patient.species, patient.breed, patient.breed_text) == (dog, None, "Working cocker")


def test_an_unknown_breed_code_is_accepted_with_its_text_and_listed():
    ack = receive(samples.adt("A04", "X2", breed="BR77^Sprocker^L"))
    assert ack["MSA"][1] == "AA", ack
    patient = Patient.objects.get()
    breed = patient.breed
    assert (breed.name, breed.code, breed.species.code) == ("Sprocker", "BR77", "448771007")
    listed = UnmappedCode.objects.values_list("system", "kind", "external_code", "count")
    assert list(listed) == [("L", "breed", "BR77", 1)]


def test_a_weight_in_pounds_is_recorded_in_kilograms():
    text = samples.adt("A04", "X4").replace("|31.4|kg|", "|22|lb|")
    assert receive(text)["MSA"][1] == "AA"
    assert str(Patient.objects.get().current_weight) == "9.979"


def test_a_guarantor_is_the_owner_when_no_nk1_says_own():
    text = samples.adt("A04", "X5").replace("OWN^Owner^HL70063", "EMC^Emergency contact^HL70063")
    text += (
        samples.segment("GT1", {1: "1", 2: "G-900", 3: "Okafor^Chidi", 5: "1 High St^^Wye", 6: "01632960456"})
        + "\r"
    )
    assert receive(text)["MSA"][1] == "AA"
    owner = Patient.objects.get().primary_owner
    assert (owner.family_name, owner.given_name, owner.city, owner.phone) == (
        "Okafor",
        "Chidi",
        "Wye",
        "01632960456",
    )
    assert owner.external_ids.get().value == "G-900"


def test_a_registration_books_its_visit_a_discharge_finishes_it_and_an_unknown_one_is_an_error():
    assert receive(samples.adt("A04", "V1"))["MSA"][1] == "AA"
    assert receive(samples.adt("A08", "V1b"))["MSA"][1] == "AA"  # an update books nothing
    visit = Visit.objects.get()
    assert (visit.external_system, visit.external_id, visit.patient) == (
        "hl7:VETPMS",
        "V-555",
        Patient.objects.get(),
    )
    assert receive(samples.adt("A03", "V2"))["MSA"][1] == "AA"
    assert Visit.objects.get().status == "finished"
    ack = receive(samples.adt("A11", "V3").replace("|V-555", "|V-999"))
    assert ack["MSA"][1] == "AE" and ack["ERR"][2] == "PV1^1^19"


def test_allow_lists_refuse_other_senders_and_addresses(settings):
    settings.HL7_ALLOWED_SENDERS = ["OTHERPMS"]
    ack = receive(samples.adt("A04", "S1"))
    assert ack["MSA"][1] == "AR" and "not allowed" in ack["MSA"][3]
    settings.HL7_ALLOWED_SENDERS = ["VETPMS"]
    settings.HL7_ALLOWED_ADDRESSES = ["10.0.0.5"]
    assert receive(samples.adt("A04", "S2"))["MSA"][1] == "AR"
    assert receive(samples.adt("A04", "S3"), peer="10.0.0.5:4000")["MSA"][1] == "AA"
    assert Patient.objects.count() == 1 and Owner.objects.count() == 1


def test_a_message_without_msh_is_rejected():
    ack = receive("PID|1||42\r")
    assert ack["MSA"][1] == "AR" and "MSH" in ack["MSA"][3]


def test_the_ack_answers_in_the_senders_version_with_both_err_forms():
    ack = receive(samples.adt("A04", "E1", version="2.3.1", pms_id=""))
    assert ack["MSH"][11] == "2.3.1" and ack["MSA"][1] == "AE"
    assert ack["ERR"][1] == "PID^1^3^101&Required field missing&HL70357"  # ERR-1 (ELD), read up to 2.4
    assert ack["ERR"][3] == "101^Required field missing^HL70357"  # ERR-3 (2.5 on)


def test_a_visit_number_of_another_animal_is_refused_and_what_the_message_had_changed_is_undone():
    assert receive(samples.adt("A04", "W1", visit="V-1"))["MSA"][1] == "AA"
    audited = AuditEntry.objects.count()
    # PV1-19 is checked after the owner and the animal were written: both are undone.
    refused = samples.adt("A04", "W2", visit="V-1", pms_id="PMS-2", account="ACC-2", name="Ng^Tiddles")
    ack = receive(refused)
    assert ack["MSA"][1] == "AE" and ack["ERR"][2] == "PV1^1^19" and "another animal" in ack["MSA"][3]
    assert (Patient.objects.count(), Owner.objects.count(), AuditEntry.objects.count()) == (1, 1, audited)
    logged = HL7Message.objects.get(control_id="W2")
    first_ack = message_receive(refused.encode(), "x").decode()
    assert (logged.status, logged.ack_code, logged.ack) == ("error", "AE", first_ack)


def writes(queries):
    return [
        q["sql"].split(" ")[0] + " " + q["sql"].split('"')[1]
        for q in queries
        if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))
    ]


def test_an_a08_that_changes_nothing_writes_nothing_but_its_log_row(django_capture_on_commit_callbacks):
    assert receive(samples.adt("A04", "N1"))["MSA"][1] == "AA"
    audited = AuditEntry.objects.count()
    with django_capture_on_commit_callbacks() as published, CaptureQueriesContext(connection) as queries:
        assert receive(samples.adt("A08", "N2"))["MSA"][1] == "AA"
    assert writes(queries.captured_queries) == ["INSERT integrations_hl7message"]
    assert AuditEntry.objects.count() == audited and published == []


@pytest.mark.parametrize(
    "change, most",
    [
        # The log row written; the animal, its owner, their link and the weight looked up. No
        # savepoints: the services run inside the message's all-or-nothing transaction.
        ({}, 5 + 2),
        # And the animal updated, its audit entry, and its search words rewritten (read,
        # delete, insert, and the worklist name key).
        ({"name": "Hartley^Biscuit II"}, 5 + 2 + 6),
    ],
)
def test_an_a08_asks_the_database_a_bounded_number_of_questions(change, most):
    assert receive(samples.adt("A04", "Q1"))["MSA"][1] == "AA"
    with CaptureQueriesContext(connection) as queries:
        assert receive(samples.adt("A08", "Q2", **change))["MSA"][1] == "AA"
    # Counted inside the test's transaction: the message's own is a savepoint here (2 statements).
    assert len(queries) <= most, "\n".join(q["sql"][:120] for q in queries.captured_queries)


def test_a_crosswalk_change_is_seen_by_the_next_message(dog, cat):
    mapping = CodeMapping.objects.create(system="L", kind="species", external_code="K9", species=dog)
    assert receive(samples.adt("A04", "C1", species="K9^Dog^L", breed=""))["MSA"][1] == "AA"
    assert Patient.objects.get().species == dog
    mapping.species = cat
    mapping.save()
    assert receive(samples.adt("A08", "C2", species="K9^Dog^L", breed=""))["MSA"][1] == "AA"
    assert Patient.objects.get().species == cat
    mapping.delete()
    # Unmapped now: listed, and the animal keeps the species it has.
    assert receive(samples.adt("A08", "C3", species="K9^Dog^L", breed=""))["MSA"][1] == "AA"
    assert Patient.objects.get().species == cat
    assert UnmappedCode.objects.get().external_code == "K9"
