"""Inbound HL7 ADT (integrations/hl7/inbound.py passes them on): the animal and its owner
registered or updated (A01/A04/A05/A08/A28/A31), its visit booked, finished or cancelled
(A01/A04/A05, A03/A11), two animals merged (A40).

Each handler only reads the message into plain data, makes one call to patients/registration.py
(where every lookup and rule is) and maps a refusal back to the ERR of the ACK."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from integrations.hl7.messages import HL7Error, Segment, hl7_date, hl7_datetime
from patients.registration import (
    AnimalRegistration,
    Coded,
    ExternalId,
    OwnerDetails,
    Problem,
    RegistrationRefused,
    Sex,
    VisitDetails,
    patient_merge_by_ids,
    patient_register,
    visit_end,
)

if TYPE_CHECKING:  # names for the type hints only
    from integrations.hl7.inbound import Received
    from patients.models import Patient, Visit

# PID-8 (HL7 table 0001) as DICOM Patient's Sex.
SEX = {"M": Sex.MALE, "F": Sex.FEMALE, "O": Sex.UNKNOWN, "U": Sex.UNKNOWN, "A": Sex.UNKNOWN, "N": Sex.UNKNOWN,
       "": Sex.UNKNOWN}  # fmt: skip
# Body weight observations (OBX-3): LOINC 29463-7 Body weight, 3141-9 Body weight Measured.
WEIGHT_CODES = {"29463-7", "3141-9"}
UNITS_TO_KG = {
    "kg": Decimal(1),
    "g": Decimal("0.001"),
    "lb": Decimal("0.45359237"),
    "[lb_av]": Decimal("0.45359237"),
}


def _coded(seg: Segment, n: int) -> Coded | None:
    """PID-35/36 (CE/CWE: code^text^system); None when the field is empty."""
    code, text, system = seg.component(n, 1), seg.component(n, 2), seg.component(n, 3)
    return Coded(system=system, code=code, text=text) if code or text else None


def _patient_ids(received: Received, pid: Segment) -> list[ExternalId]:
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


def _owner(received: Received) -> tuple[OwnerDetails | None, str]:
    """The owner from NK1 with relationship OWN (table 0063), else GT1, else PID alone: many
    practice-management systems send neither and name the owner only by PID-5's family name
    (``Owner^Animal``), PID-11 address, PID-13/14 phones and PID-18 account number. With the
    account number: PID-18, or GT1-2 when sent. Values cut to what the clinic record holds; an
    empty field is not sent (HL7 v2.5 2.5.3: an empty field leaves the value as it is)."""
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
        if not family:  # an account alone names an owner the clinic knows
            return None, account
        name, address, phones = [family], pid.components(11), [_phone(pid, 13), _phone(pid, 14)]
    family, given = (name + ["", ""])[:2]
    street, other, city, _state, postcode, country = (address + [""] * 6)[:6]
    phones = [p for p in phones if p]
    owner = OwnerDetails(
        family_name=family[:64],
        given_name=None if nk1 is None and gt1 is None else given[:64],  # PID has none: keep what is known
        address_line1=street[:128] or None, address_line2=other[:128] or None, city=city[:64] or None,
        postcode=postcode[:16] or None, country=country[:64] or None,
        phone=phones[0][:32] if phones else None, mobile=phones[1][:32] if len(phones) > 1 else None,
    )  # fmt: skip
    return owner, account


def _weight(received: Received) -> Decimal | None:
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


def _visit(received: Received) -> VisitDetails | None:
    """A01/A04/A05 with a visit number (PV1-19) book that visit, so that A03/A11 can close or
    cancel it; PV1-44 is when it starts, PV1-2 (patient class) E an emergency."""
    pv1 = received.one("PV1", required=False)
    event = received.header.message_type.split(received.header.component)[-1]
    if pv1 is None or not pv1.component(19, 1) or event not in ("A01", "A04", "A05"):
        return None
    starts_at = hl7_datetime(pv1[44], segment="PV1", field=44)
    return VisitDetails(number=pv1.component(19, 1)[:64], starts_at=starts_at, emergency=pv1[2] == "E")


def _registration(received: Received) -> AnimalRegistration:
    """The animal, its owner, weight and visit as an ADT message (PID, NK1/GT1, OBX, PV1) has them."""
    pid = received.one("PID")
    ids = _patient_ids(received, pid)
    owner, account = _owner(received)
    return AnimalRegistration(
        sender=received.system,
        ids=tuple(ids),
        name=_animal_name(pid)[:64],
        birth_date=hl7_date(pid[7], segment="PID", field=7),
        sex=SEX.get(pid[8].upper(), Sex.UNKNOWN),
        species_code=_coded(pid, 35),
        breed_code=_coded(pid, 36),
        # The breed in words: PID-36's text, else PID-37 (strain).
        breed_text=(pid.component(36, 2) or pid.component(36, 1) or pid.component(37, 2) or pid[37])[:64],
        owner=owner,
        owner_account=account,
        weight_kg=_weight(received),
        visit=_visit(received),
        example={"control_id": received.header.control_id[:64], "sender": received.system},
    )


def adt_register(received: Received) -> Patient:
    """ADT A01/A04/A05/A08/A28/A31: create or update the animal (and its owner, weight, visit)."""
    registration = _registration(received)
    try:
        # The message is all or nothing (inbound.message_receive): no savepoint of its own.
        return patient_register(actor=received.actor, registration=registration, savepoints=False)
    except RegistrationRefused as refused:
        raise _refusal(refused) from None


# Where the fields of a registration are read from, for the ERR segment's location (ERR-2), and
# the code (ERR-3, table 0357: 101 required field missing, 204 unknown key identifier, 205
# duplicate key identifier) for each problem (HL7 v2.5 2.15.5).
FIELD_LOCATIONS = {"ids": ("PID", 3), "species": ("PID", 35), "visit": ("PV1", 19), "merged_ids": ("MRG", 1)}
ERROR_CODES: dict[Problem, int] = {"missing": 101, "unknown": 204, "taken": 205}


def _refusal(refused: RegistrationRefused) -> HL7Error:
    """The service's refusal as the ERR of an AE: where in the message, which code, and why."""
    segment, field = FIELD_LOCATIONS.get(refused.field, ("", 0))
    where = f"{segment}-{field} ({refused.field})" if segment else refused.field
    return HL7Error(
        f"{where} {refused.reason}", code=ERROR_CODES[refused.problem], segment=segment, field=field
    )


def adt_merge(received: Received) -> Patient:
    """ADT A40: merge the animal named in MRG-1 into the one in PID-3 (patient_merge_by_ids)."""
    pid, mrg = received.one("PID"), received.one("MRG")
    ids = _patient_ids(received, pid)
    merged_ids = []
    for rep in mrg.repeats(1):  # MRG-1 (CX), as PID-3: id^^^authority
        authority = mrg.component(1, 4, rep).split("&")[0]
        merged_ids.append((f"hl7:{authority}" if authority else received.system, mrg.component(1, 1, rep)))
    try:
        return patient_merge_by_ids(actor=received.actor, ids=ids, merged_ids=merged_ids, savepoints=False)
    except RegistrationRefused as refused:
        raise _refusal(refused) from None


def adt_visit_end(received: Received) -> Visit:
    """ADT A03 (discharge) finishes the visit in PV1-19; A11 (cancel admit) cancels it."""
    number = received.one("PV1").component(19, 1)
    cancelled = not received.header.message_type.endswith("A03")
    try:
        return visit_end(
            actor=received.actor, sender=received.system, number=number, cancelled=cancelled, savepoints=False
        )
    except RegistrationRefused as refused:
        raise _refusal(refused) from None
