"""Inbound HL7 ADT (integrations/hl7/inbound.py passes them on): the animal and its owner
registered or updated (A01/A04/A05/A08/A28/A31), its visit booked, finished or cancelled
(A01/A04/A05, A03/A11), two animals merged (A40), all through the services the UI uses."""

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

from django.utils.timezone import now

from integrations.hl7.messages import HL7Error, Segment
from patients.crosswalk import breed_standin, species_standin, unmapped_code_seen
from patients.models import Breed, CodeMapping, Owner, Patient, Species, UnmappedCode, Visit
from patients.selectors import coded_breed, coded_species, owner_by_external_id, patient_by_external_id
from patients.services import (
    ExternalId,
    owner_upsert,
    patient_merge,
    patient_upsert,
    visit_create,
    visit_update,
)

if TYPE_CHECKING:  # inbound.py imports the handlers
    from integrations.hl7.inbound import Received

Coded = TypeVar("Coded", Species, Breed)

SEX = {"M": Patient.Sex.MALE, "F": Patient.Sex.FEMALE, "O": Patient.Sex.UNKNOWN, "U": Patient.Sex.UNKNOWN,
       "A": Patient.Sex.UNKNOWN, "N": Patient.Sex.UNKNOWN, "": Patient.Sex.UNKNOWN}  # fmt: skip
# Body weight observations (OBX-3): LOINC 29463-7 Body weight, 3141-9 Body weight Measured.
WEIGHT_CODES = {"29463-7", "3141-9"}
UNITS_TO_KG = {
    "kg": Decimal(1),
    "g": Decimal("0.001"),
    "lb": Decimal("0.45359237"),
    "[lb_av]": Decimal("0.45359237"),
}


def _coded(
    received: "Received", seg: Segment, n: int, lookup: Callable[..., Coded | None], kind: str
) -> tuple[Coded | None, UnmappedCode | None]:
    """PID-35/36 (CE/CWE: code^text^system) through the crosswalk: (ours, None), or for a
    code the crosswalk does not map (None, the UnmappedCode it was counted in); (None, None)
    when no code is sent. The sender's own coding system names the crosswalk entry; without
    one, the sender (MSH-3) does."""
    code, text, system = seg.component(n, 1), seg.component(n, 2), seg.component(n, 3)
    code = code or text  # text alone (^Canine): the text is what the crosswalk maps
    if not code:
        return None, None
    found = lookup(system=system or received.system, code=code) or lookup(system=received.system, code=code)
    if found is not None:
        return found, None
    example = {"control_id": received.header.control_id[:64], "sender": received.system, "text": text[:64],
               "patient": _patient_ids(received, received.one("PID"))[0][1]}  # fmt: skip
    system = system or received.system
    return None, unmapped_code_seen(system=system, kind=kind, code=code, text=text, example=example)


def _patient_ids(received: "Received", pid: Segment) -> list[ExternalId]:
    """PID-3 identifiers: (assigning authority or our sender, id). The first is the PMS's own.
    Older senders put the animal's id in PID-2 (Patient ID, external) and leave PID-3 empty."""
    ids: list[ExternalId] = []
    for n in (3, 2):
        for rep in pid.repeats(n):
            value = pid.component(n, 1, rep)
            authority = pid.component(n, 4, rep).split("&")[0]
            if value:
                ids.append((f"hl7:{authority}" if authority else received.system, value))
        if ids:
            return ids
    raise HL7Error("PID-3 (patient identifier) is empty, and so is PID-2", code=101, segment="PID", field=3)


def _animal_name(pid: Segment) -> str:
    """PID-5: the animal's name is the given name when the sender writes OwnerFamily^Animal
    (as DICOM does), else the family component."""
    family, given = pid.component(5, 1), pid.component(5, 2)
    name = given or family
    if not name:
        raise HL7Error("PID-5 (the animal's name) is empty", code=101, segment="PID", field=5)
    return name


def _phone(seg: Segment, n: int, repetition: str | None = None) -> str:
    """XTN: the number as written (XTN-1), else unformatted (XTN-12), else area + local."""
    parts = seg.components(n, repetition) + [""] * 12
    return (parts[0] or parts[11] or (parts[5] + parts[6])).strip()


def _owner(received: "Received", patient: Patient | None) -> Owner | None:
    """The owner from NK1 with relationship OWN (table 0063), else GT1, else PID alone: many
    practice-management systems send neither and name the owner only by PID-5's family name
    (``Owner^Animal``), PID-11 address, PID-13/14 phones and PID-18 account number. Keyed by
    PID-18 or GT1-2 when sent, else the animal's current owner of that name."""
    nk1 = next((s for s in received.all("NK1") if s.component(3, 1).upper() == "OWN"), None)
    gt1 = received.one("GT1", required=False)
    pid = received.one("PID")
    account = pid.component(18, 1)
    if nk1 is not None:
        name, address, phones = nk1.components(2), nk1.components(4), [_phone(nk1, 5), _phone(nk1, 6)]
    elif gt1 is not None:
        name, address, phones = gt1.components(3), gt1.components(5), [_phone(gt1, 6), _phone(gt1, 7)]
        account = gt1.component(2, 1) or account
    else:
        # PID-5 Owner^Animal: without a given name, the one name is the animal's (_animal_name).
        family = pid.component(5, 1) if pid.component(5, 2) else ""
        if not family:  # an account alone names an owner we know, and changes nothing of it
            known = account and owner_by_external_id(system=f"{received.system}:account", value=account)
            return known or None
        name, address, phones = [family], pid.components(11), [_phone(pid, 13), _phone(pid, 14)]
    family, given = (name + ["", ""])[:2]
    fields: dict[str, Any] = {"family_name": family[:64], "given_name": given[:64]}
    if nk1 is None and gt1 is None:
        del fields["given_name"]  # PID has none: keep what the desk or an NK1 recorded
    street, other, city, _state, postcode, country = (address + [""] * 6)[:6]
    fields.update({k: v for k, v in {"address_line1": street[:128], "address_line2": other[:128], "city": city[:64],
                                      "postcode": postcode[:16], "country": country[:64]}.items() if v})  # fmt: skip
    phones = [p for p in phones if p]
    if phones:
        fields["phone"] = phones[0][:32]
    if len(phones) > 1:
        fields["mobile"] = phones[1][:32]
    owner = None
    if not account and patient is not None:
        owner = next((o for o in patient.owners.all() if o.family_name.lower() == family.lower()), None)
    return owner_upsert(
        actor=received.actor, fields=fields, owner=owner,
        external=(f"{received.system}:account", account) if account else None, savepoints=False,
    )  # fmt: skip


def _weight(received: "Received") -> Decimal | None:
    for obx in received.all("OBX"):
        code, text = obx.component(3, 1), obx.component(3, 2).lower()
        if code in WEIGHT_CODES or "weight" in text:
            unit = (obx.component(6, 1) or "kg").lower()
            try:
                return Decimal(obx[5]) * UNITS_TO_KG[unit]
            except (InvalidOperation, KeyError):
                raise HL7Error(
                    f"OBX-5/6 weight '{obx[5]} {unit}' is not a weight", code=102, segment="OBX", field=5
                ) from None
    return None


def _is_standin(species_id: int) -> bool:
    return UnmappedCode.objects.filter(species_id=species_id).exists()


def adt_register(received: "Received") -> Patient:
    """ADT A01/A04/A05/A08/A28/A31: create or update the animal (and its owner)."""
    from integrations.hl7.messages import hl7_date

    pid = received.one("PID")
    ids = _patient_ids(received, pid)
    patient: Patient | None = None
    found_by: ExternalId | None = None
    for system, value in ids:
        patient = patient_by_external_id(system=system, value=value)
        if patient is not None:
            found_by = (system, value)
            break
    species, unmapped_species = _coded(received, pid, 35, coded_species, CodeMapping.Kind.SPECIES)
    breed, unmapped_breed = _coded(received, pid, 36, coded_breed, CodeMapping.Kind.BREED)
    if species is None and unmapped_species and (patient is None or _is_standin(patient.species_id)):
        # An unmapped species code: a mapped breed says what it meant; else a new animal carries
        # the stand-in named after the sender's text until the code is mapped. A known animal
        # keeps the species it has.
        species = breed.species if breed is not None else species_standin(unmapped=unmapped_species)
    if species is None and patient is None:
        raise HL7Error("PID-35 (species) is required for a new animal", code=101, segment="PID", field=35)
    fields: dict[str, Any] = {
        "name": _animal_name(pid)[:64],
        "birth_date": hl7_date(pid[7], segment="PID", field=7),
        "sex": SEX.get(pid[8].upper(), Patient.Sex.UNKNOWN),
    }
    if species is not None:
        fields["species"] = species
    if unmapped_breed is not None:
        # The stand-in of the animal's species, or (a code another species' stand-in has) text.
        animal_species = species
        if animal_species is None:
            assert patient is not None  # a new animal without a species was refused above
            animal_species = patient.species
        breed = breed_standin(unmapped=unmapped_breed, species=animal_species)
    breed_text = pid.component(36, 2) or pid.component(36, 1) if breed is None else ""
    if breed is not None:
        fields["breed"], fields["breed_text"] = breed, ""
    elif breed_text or pid.component(37, 2) or pid[37]:
        fields["breed"], fields["breed_text"] = None, (breed_text or pid.component(37, 2) or pid[37])[:64]
    owner = _owner(received, patient)
    patient = patient_upsert(
        actor=received.actor, fields=fields, patient=patient, owner=owner, weight_kg=_weight(received),
        external=None if found_by == ids[0] else ids[0],  # found by the PMS's own id: it is linked
        savepoints=False,  # the message is all or nothing (message_receive)
    )  # fmt: skip
    _visit(received, patient)
    return patient


def _visit(received: "Received", patient: Patient) -> Visit | None:
    """A01/A04/A05 with a visit number (PV1-19) book that visit (idempotent on the number), so
    that A03/A11 can close or cancel it; PV1-44 is when it starts."""
    from integrations.hl7.messages import hl7_datetime

    pv1 = received.one("PV1", required=False)
    event = received.header.message_type.split(received.header.component)[-1]
    if pv1 is None or not pv1.component(19, 1) or event not in ("A01", "A04", "A05"):
        return None
    starts_at = hl7_datetime(pv1[44], segment="PV1", field=44) or now()
    number = pv1.component(19, 1)[:64]
    other = (
        Visit.objects.filter(external_system=received.system, external_id=number)
        .exclude(patient=patient)
        .first()
    )
    if other is not None:
        raise HL7Error(f"PV1-19: visit {number} belongs to another animal", code=205, segment="PV1", field=19)
    return visit_create(
        actor=received.actor,
        patient=patient,
        starts_at=starts_at,
        reason="Emergency" if pv1[2] == "E" else "",  # PV1-2 patient class
        external=(received.system, pv1.component(19, 1)[:64]),
        savepoints=False,
    )


def adt_merge(received: "Received") -> Patient:
    """ADT A40: merge the animal named in MRG-1 into the one in PID-3 (patient_merge)."""
    pid, mrg = received.one("PID"), received.one("MRG")
    target = next(
        (p for p in (patient_by_external_id(system=s, value=v) for s, v in _patient_ids(received, pid)) if p),
        None,
    )
    if target is None:
        raise HL7Error("PID-3: no such patient to merge into", code=204, segment="PID", field=3)
    source = None
    for rep in mrg.repeats(1):
        authority = mrg.component(1, 4, rep).split("&")[0]
        system = f"hl7:{authority}" if authority else received.system
        source = patient_by_external_id(system=system, value=mrg.component(1, 1, rep))
        if source:
            break
    if source is None:
        raise HL7Error("MRG-1: no such patient to merge", code=204, segment="MRG", field=1)
    if source.pk == target.pk:
        return target  # merged already (a repeat under another control id)
    return patient_merge(actor=received.actor, source=source, target=target, savepoints=False)


def adt_visit_end(received: "Received") -> Visit:
    """ADT A03 (discharge) finishes the visit in PV1-19; A11 (cancel admit) cancels it."""
    pv1 = received.one("PV1")
    number = pv1.component(19, 1)
    visit = (
        Visit.objects.filter(external_system=received.system, external_id=number).first() if number else None
    )
    if visit is None:
        raise HL7Error(f"PV1-19: no visit numbered '{number}'", code=204, segment="PV1", field=19)
    status = Visit.Status.FINISHED if received.header.message_type.endswith("A03") else Visit.Status.CANCELLED
    return visit_update(actor=received.actor, visit=visit, fields={"status": status}, savepoints=False)
