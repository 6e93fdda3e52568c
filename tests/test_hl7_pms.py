"""Messages as an open-source veterinary PMS sends them (tests/hl7_samples.py pms_*), through
message_receive: PID-2 ids, the owner only in PID, its own species, breed and service codes,
OBR-6 times, v2.2/2.3, and control ids reused or left out."""

from datetime import UTC, datetime

import pytest

from imaging.models import ImagingOrder
from integrations.hl7.inbound import message_receive
from integrations.models import HL7HeldOrder, HL7Message
from patients.models import CodeMapping, Owner, Patient, UnmappedCode
from tests import hl7_samples as samples
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.django_db


def receive(text, peer="127.0.0.1:5000"):
    ack = message_receive(text.encode(), peer).decode()
    return {line[:3]: line.split("|") for line in ack.strip("\r").split("\r")}


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def pms_codes(dog, labrador):
    """The crosswalk entries an admin makes for the PMS's dog codes."""
    CodeMapping.objects.create(system="OpenVPMS", kind="species", external_code="CANINE", species=dog)
    CodeMapping.objects.create(system="OpenVPMS", kind="breed", external_code="LABRADOR", breed=labrador)


def test_an_animal_in_pid2_with_its_owner_only_in_pid_is_registered_with_that_owner_responsible(
    pms_codes, dog
):
    ack = receive(samples.pms_adt("A04", "1"))
    assert ack["MSA"][1:3] == ["AA", "1"], ack
    patient = Patient.objects.get()
    assert (patient.name, patient.species, patient.breed.name, patient.sex) == (
        "Fido",
        dog,
        "Labrador retriever",
        "M",
    )
    assert list(patient.external_ids.values_list("system", "value")) == [("hl7:OpenVPMS", "1001")]
    owner = patient.primary_owner
    assert (owner.family_name, owner.given_name, owner.address_line1, owner.city, owner.postcode) == (
        "Bar", "", "123 Broadwater Avenue", "Cape Woolamai", "3058",
    )  # fmt: skip
    assert (owner.phone, owner.mobile) == ("(03) 12345678", "(03) 98765432")
    assert list(owner.external_ids.values_list("system", "value")) == [("hl7:OpenVPMS:account", "3001")]
    assert patient.dicom_name == "Bar^Fido"


def test_a_second_animal_on_the_same_account_gets_the_same_owner_and_an_update_keeps_its_given_name(
    pms_codes,
):
    assert receive(samples.pms_adt("A04", "1"))["MSA"][1] == "AA"
    Owner.objects.update(given_name="Ann")  # as the desk recorded it
    assert receive(samples.pms_adt("A04", "2", animal_id="1002", name="Bar^Rex"))["MSA"][1] == "AA"
    assert Owner.objects.count() == 1
    owner = Owner.objects.get()
    assert owner.given_name == "Ann"
    assert sorted(owner.patients.values_list("name", flat=True)) == ["Fido", "Rex"]


def test_without_any_owner_details_the_animal_is_registered_without_owner(pms_codes):
    assert (
        receive(samples.pms_adt("A04", "1", name="Fido", account="", address="", home="", work=""))["MSA"][1]
        == "AA"
    )
    assert Patient.objects.get().name == "Fido" and not Owner.objects.exists()


def test_unmapped_species_and_breed_codes_are_accepted_with_their_text_and_listed_with_counts_and_examples():
    ack = receive(samples.pms_adt("A04", "1"))
    assert ack["MSA"][1] == "AA", ack
    patient = Patient.objects.get()
    assert (patient.species.name, patient.species.scheme, patient.species.active) == (
        "Canine",
        "99OPENVPMS",
        False,
    )
    assert (patient.breed.name, patient.breed.species) == ("Labrador Retriever", patient.species)
    assert (
        receive(samples.pms_adt("A04", "2", animal_id="1002", name="Bar^Rex", breed="KELPIE^Kelpie"))["MSA"][
            1
        ]
        == "AA"
    )
    listed = {
        (c.kind, c.system, c.external_code): (c.count, c.external_meaning) for c in UnmappedCode.objects.all()
    }
    assert listed == {
        ("species", "OpenVPMS", "CANINE"): (2, "Canine"),
        ("breed", "OpenVPMS", "LABRADOR"): (1, "Labrador Retriever"),
        # No coding system: the sender's name is the crosswalk system.
        ("breed", "hl7:OpenVPMS", "KELPIE"): (1, "Kelpie"),
    }
    examples = UnmappedCode.objects.get(external_code="CANINE").examples
    assert [(e["control_id"], e["patient"], e["text"]) for e in examples] == [
        ("2", "1002", "Canine"),
        ("1", "1001", "Canine"),
    ]
    assert Patient.objects.get(name="Rex").species == patient.species


def test_mapping_the_codes_moves_the_animals_that_carried_them(
    dog, labrador, django_capture_on_commit_callbacks
):
    assert receive(samples.pms_adt("A04", "1"))["MSA"][1] == "AA"
    assert receive(samples.pms_adt("A04", "2", animal_id="1002", name="Bar^Rex", breed=""))["MSA"][1] == "AA"
    with django_capture_on_commit_callbacks(execute=True):
        CodeMapping.objects.create(system="OpenVPMS", kind="species", external_code="CANINE", species=dog)
    assert set(Patient.objects.values_list("name", "species")) == {("Fido", dog.pk), ("Rex", dog.pk)}
    fido = Patient.objects.get(name="Fido")
    assert (fido.breed.name, fido.breed.species) == (
        "Labrador Retriever",
        dog,
    )  # the stand-in breed moved along
    with django_capture_on_commit_callbacks(execute=True):
        CodeMapping.objects.create(system="OpenVPMS", kind="breed", external_code="LABRADOR", breed=labrador)
    fido.refresh_from_db()
    assert (fido.breed, fido.breed_text) == (labrador, "")
    assert not UnmappedCode.objects.filter(mapped__isnull=True).exists()
    changes = AuditEntry.objects.filter(object_id=str(fido.pk), action="update", channel="system")
    assert [sorted(e.changes) for e in changes.order_by("id")] == [["species"], ["breed"]]
    # The next message maps straight through.
    assert receive(samples.pms_adt("A08", "3", name="Bar^Fido II"))["MSA"][1] == "AA"
    fido.refresh_from_db()
    assert (fido.name, fido.species, fido.breed) == ("Fido II", dog, labrador)


def test_an_unmapped_species_code_leaves_a_known_animals_species_as_it_is(pms_codes, cat):
    assert receive(samples.pms_adt("A04", "1"))["MSA"][1] == "AA"
    ack = receive(samples.pms_adt("A08", "2", species="K9^Dog^OTHER", breed=""))
    assert ack["MSA"][1] == "AA", ack
    assert Patient.objects.get().species.name == "Dog"
    assert UnmappedCode.objects.get().external_code == "K9"


def test_a_mapped_breed_says_what_an_unmapped_species_meant(dog):
    CodeMapping.objects.create(
        system="OpenVPMS", kind="breed", external_code="LABRADOR", breed=dog.breeds.get(code="62137007")
    )
    assert receive(samples.pms_adt("A04", "1"))["MSA"][1] == "AA"
    assert Patient.objects.get().species == dog


@pytest.mark.parametrize("version", ["2.2", "2.3"])
def test_old_versions_are_accepted_and_acked_in_their_own_version(pms_codes, version):
    ack = receive(samples.pms_adt("A04", "1", version=version))
    assert ack["MSA"][1:3] == ["AA", "1"]
    # MSH-9.3 (message structure) exists from 2.3.1 on.
    assert (ack["MSH"][8], ack["MSH"][11]) == ("ACK^A04", version)
    assert Patient.objects.count() == 1


def test_a_version_we_do_not_take_is_refused_in_the_senders_version():
    ack = receive(samples.pms_adt("A04", "1", version="2.1"))
    assert (ack["MSA"][1], ack["MSH"][11], ack["ERR"][2]) == ("AR", "2.1", "MSH^1^12")
    assert not Patient.objects.exists()


def test_the_same_message_again_even_stamped_anew_gets_the_first_ack_and_changes_nothing(pms_codes):
    first = receive(samples.pms_adt("A04", "7"))
    resent = samples.pms_adt("A04", "7").replace("|20261123101500||ADT", "|20261123101900||ADT")  # MSH-7 anew
    again = receive(resent)
    assert again == first
    assert HL7Message.objects.get().repeats == 1 and Patient.objects.count() == 1


def test_a_control_id_reused_for_another_message_is_applied_not_dropped(pms_codes):
    assert receive(samples.pms_adt("A04", "1"))["MSA"][1] == "AA"
    ack = receive(samples.pms_adt("A08", "1", name="Bar^Fido II"))  # a test setup that counts from 1 again
    assert ack["MSA"][1:3] == ["AA", "1"]
    assert Patient.objects.get().name == "Fido II"
    assert list(HL7Message.objects.values_list("control_id", "repeats")) == [("1", 0), ("1", 0)]


def test_a_message_without_control_id_is_applied_once_and_its_copy_gets_the_first_ack(pms_codes):
    first = receive(samples.pms_adt("A04", ""))
    assert (first["MSA"][1], first["MSA"][2]) == ("AA", "")
    assert receive(samples.pms_adt("A04", "")) == first
    assert (HL7Message.objects.get().repeats, Patient.objects.count()) == (1, 1)
    # Another message without a control id is another message, even if only its time differs.
    assert receive(samples.pms_adt("A08", "", sent="20261123103000", name="Bar^Fido II"))["MSA"][1] == "AA"
    assert receive(samples.pms_adt("A08", "", sent="20261123110000", name="Bar^Fido"))["MSA"][1] == "AA"
    assert Patient.objects.get().name == "Fido" and HL7Message.objects.count() == 3


# --- Orders ----------------------------------------------------------------------------------


@pytest.fixture
def pms_services(pms_codes, stations):
    from imaging.models import Procedure

    CodeMapping.objects.create(
        system="OpenVPMS",
        kind="procedure",
        external_code="RADTHX",
        procedure=Procedure.objects.get(code="DX-THX2"),
    )


def test_a_service_code_maps_through_the_crosswalk_and_obr6_is_the_requested_time(pms_services):
    ack = receive(samples.pms_order("2"))
    assert ack["MSA"][1:3] == ["AA", "2"], ack
    order = ImagingOrder.objects.get()
    assert (order.procedure.code, order.placer_order_number, order.scheduled_start) == (
        "DX-THX2",
        "5001",
        utc(2026, 11, 23, 14, 30),
    )
    # The owner named only in PID is the worklist's Responsible Person.
    from imaging.dicom.records.datasets import worklist_item

    item = worklist_item(order)
    assert (str(item.PatientName), item.ResponsiblePerson.family_name, item.ResponsiblePersonRole) == (
        "Bar^Fido",
        "Bar",
        "OWNER",
    )
    assert (item.PatientSpeciesDescription, item.PatientBreedDescription) == (
        "Canis lupus familiaris",
        "Labrador retriever",
    )


def test_an_order_with_only_its_transaction_time_is_for_when_it_was_placed(pms_services):
    assert receive(samples.pms_order("2", requested=""))["MSA"][1] == "AA"
    assert ImagingOrder.objects.get().scheduled_start == utc(2026, 11, 23, 10, 15)


def test_a_blank_requested_time_is_no_time_and_the_transaction_time_is_used(pms_services):
    # OBR-6 of spaces is an empty field, as a missing one is: the next time in line counts.
    assert receive(samples.pms_order("2", requested="  "))["MSA"][1] == "AA"
    assert ImagingOrder.objects.get().scheduled_start == utc(2026, 11, 23, 10, 15)


def test_an_order_with_an_unmapped_service_code_waits_listed_until_the_code_is_mapped(
    pms_codes, stations, django_capture_on_commit_callbacks
):
    from imaging.models import Procedure

    ack = receive(samples.pms_order("2"))
    assert ack["MSA"][1] == "AA", ack
    assert not ImagingOrder.objects.exists()
    held = HL7HeldOrder.objects.get()
    assert (held.placer_order_number, held.code.kind, held.code.external_code, held.code.count) == (
        "5001",
        "procedure",
        "RADTHX",
        1,
    )
    assert held.message == HL7Message.objects.get(control_id="2")
    assert Patient.objects.get().name == "Fido"  # the animal is registered meanwhile
    # The PMS moves it: the held order waits with the new message.
    assert receive(samples.pms_order("3", control="XO", requested="20261124090000"))["MSA"][1] == "AA"
    assert HL7HeldOrder.objects.get().message.control_id == "3" and not ImagingOrder.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        CodeMapping.objects.create(system="OpenVPMS", kind="procedure", external_code="RADTHX",
                                   procedure=Procedure.objects.get(code="DX-THX2"))  # fmt: skip
    order = ImagingOrder.objects.get()
    assert (order.procedure.code, order.placer_order_number, order.scheduled_start) == (
        "DX-THX2",
        "5001",
        utc(2026, 11, 24, 9),
    )
    assert not HL7HeldOrder.objects.exists()
    assert UnmappedCode.objects.get(kind="procedure").mapped is not None


def test_a_cancel_for_a_held_order_ends_its_wait(pms_codes, stations):
    assert receive(samples.pms_order("2"))["MSA"][1] == "AA"
    assert receive(samples.pms_order("3", control="CA"))["MSA"][1] == "AA"
    assert not HL7HeldOrder.objects.exists() and not ImagingOrder.objects.exists()


def test_an_order_without_a_service_code_is_refused(pms_codes, stations):
    ack = receive(samples.pms_order("2", service=""))
    assert (ack["MSA"][1], ack["ERR"][2]) == ("AE", "OBR^1^4")
    assert not Patient.objects.exists() and not HL7HeldOrder.objects.exists()


def test_an_admin_sees_the_unmapped_codes_and_the_held_orders_and_maps_a_code_from_the_list(
    pms_codes, stations, admin_client
):
    import html
    import re

    assert receive(samples.pms_adt("A04", "1", species="EQUINE^Equine^OpenVPMS", breed=""))["MSA"][1] == "AA"
    assert receive(samples.pms_order("2", animal_id="1002", name="Bar^Rex"))["MSA"][1] == "AA"
    page = admin_client.get("/admin/patients/unmappedcode/").content.decode()
    assert "EQUINE" in page and "Equine" in page and "RADTHX" in page and "Thorax radiographs" in page
    link = html.unescape(re.search(r'href="([^"]*external_code=EQUINE[^"]*)"', page).group(1))
    form = admin_client.get(link).content.decode()
    assert 'value="EQUINE"' in form and 'value="OpenVPMS"' in form
    held = admin_client.get("/admin/integrations/hl7heldorder/").content.decode()
    assert "5001" in held and "RADTHX" in held


def test_an_order_for_a_species_limited_procedure_waits_for_the_animals_unmapped_species(
    stations, dog, django_capture_on_commit_callbacks
):
    from imaging.models import Procedure

    hips = Procedure.objects.get(code="DX-HIPS")  # dogs and cats only
    CodeMapping.objects.create(system="OpenVPMS", kind="procedure", external_code="RADHIPS", procedure=hips)
    ack = receive(samples.pms_order("2", service="RADHIPS^Hip scoring^OpenVPMS"))
    assert ack["MSA"][1] == "AA", ack
    assert not ImagingOrder.objects.exists()
    assert HL7HeldOrder.objects.get().code.external_code == "CANINE"
    with django_capture_on_commit_callbacks(execute=True):
        CodeMapping.objects.create(system="OpenVPMS", kind="species", external_code="CANINE", species=dog)
    order = ImagingOrder.objects.get()
    assert (order.procedure, order.patient.species) == (hips, dog)
    assert not HL7HeldOrder.objects.exists()


def test_the_admin_role_sees_the_unmapped_codes_and_the_held_orders(pms_codes, stations, staff, client):
    assert receive(samples.pms_order("2"))["MSA"][1] == "AA"
    client.force_login(staff["admin"])
    assert "RADTHX" in client.get("/admin/patients/unmappedcode/").content.decode()
    assert "5001" in client.get("/admin/integrations/hl7heldorder/").content.decode()
    client.force_login(staff["front desk"])
    assert client.get("/admin/integrations/hl7heldorder/").status_code in (302, 403)


def test_an_account_without_an_owner_name_links_the_owner_known_by_it_and_changes_nothing_of_it(pms_codes):
    assert receive(samples.pms_adt("A04", "1"))["MSA"][1] == "AA"
    ack = receive(samples.pms_adt("A04", "2", animal_id="1002", name="Rex", address="", home="", work=""))
    assert ack["MSA"][1] == "AA", ack
    owner = Owner.objects.get()
    assert (owner.family_name, owner.phone) == ("Bar", "(03) 12345678")
    assert Patient.objects.get(name="Rex").primary_owner == owner
