"""Inbound HL7: one entry (``message_receive``), thin handlers over the services the UI uses.

Every message is logged; the same message again (same sender, control id and content, see
``message_digest``) returns the first ACK and changes nothing; ``AA`` is sent only after the
change is committed; bad data rolls
back whatever the message had changed and is answered ``AE`` (``AR`` for what we do not
accept at all) with an ERR naming the segment, field and problem.
"""

import logging
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.timezone import now

from integrations.hl7.messages import (
    HL7Error,
    ack_build,
    header_read,
    message_digest,
    message_segments,
    structure_check,
    text_decode,
)
from integrations.models import HL7HeldOrder, HL7Message
from patients.crosswalk import breed_standin, species_standin, unmapped_code_seen
from patients.models import CodeMapping, Patient, UnmappedCode, Visit
from patients.selectors import coded_breed, coded_species, owner_by_external_id, patient_by_external_id
from patients.services import owner_upsert, patient_merge, patient_upsert, visit_create, visit_update
from vetclinic.audit.models import Channel
from vetclinic.audit.services import Actor

log = logging.getLogger("integrations.hl7")
Status = HL7Message.Status

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


class Received:
    """One parsed message on its way through a handler."""

    def __init__(self, text, header, peer, message=None):
        self.text, self.header, self.peer, self.message = text, header, peer, message
        self.segments = message_segments(text, header)
        self.actor = Actor(
            channel=Channel.HL7, name=f"{header.sending_application}@{header.sending_facility}".strip("@")
        )

    def all(self, name):
        return [s for s in self.segments if s.name == name]

    def one(self, name, *, required=True):
        found = self.all(name)
        if not found and required:
            raise HL7Error(f"{name} segment is missing", code=100, segment=name)
        return found[0] if found else None

    @property
    def system(self):
        """The namespace of the sender's own ids: its application name (MSH-3)."""
        return f"hl7:{self.header.sending_application.split(self.header.component)[0] or 'unknown'}"


def _allowed(header, peer):
    senders = settings.HL7_ALLOWED_SENDERS
    if senders and header.sending_application.split(header.component)[0] not in senders:
        return False
    addresses = settings.HL7_ALLOWED_ADDRESSES
    return not addresses or peer.rsplit(":", 1)[0] in addresses


def message_receive(data: bytes, peer: str, *, oversize=0) -> bytes:
    """Handle one framed message; return the ACK to send back."""
    text = text_decode(data)
    try:
        header = header_read(text)
    except HL7Error as error:
        log.warning("HL7 from %s without MSH: %r", peer, text[:60])
        return ack_build(header_read("MSH|^~\\&|||||||ACK||P|2.5.1"), code="AR", error=error).encode()
    # The log row is written as processed with its AA, in the transaction of the change: one
    # write when all goes well, and no moment at which the log says AA for a change that is not
    # committed. A refusal undoes the whole transaction; the message is then logged as refused.
    digest = message_digest(text, header)
    message = _log_row(header, peer, text, oversize, digest)
    message.status, message.ack_code, message.ack = Status.PROCESSED, "AA", ack_build(header, code="AA")
    try:
        with transaction.atomic():  # all or nothing: the services are called with savepoints=False
            # The log row first: a second copy of the message (same sender, control id and
            # content) fails here, or waits here while the first is still being handled, then fails.
            message.save()
            error = _process(text, header, peer, oversize, message=message)
            if error is not None:
                transaction.set_rollback(True)
    except IntegrityError:
        return _seen_before(header, digest)
    if error is None:
        return message.ack.encode()
    message = _log_row(header, peer, text, oversize, digest)
    _refusal_set(message, header, error)
    log.warning(
        "HL7 %s %s from %s: %s %s",
        header.message_type,
        header.control_id,
        peer,
        message.ack_code,
        error.args[0],
    )
    try:
        with transaction.atomic():  # a savepoint when the caller has a transaction open
            message.save()
    except IntegrityError:  # another copy was answered in the meantime: its answer stands
        return _seen_before(header, digest)
    return message.ack.encode()


def message_replay(*, message):
    """An admin runs a logged inbound message again (after fixing what made it fail, say a
    crosswalk entry). Its log row gets the new outcome; returns the ACK text."""
    header = header_read(message.raw)
    with transaction.atomic():
        error = _process(message.raw, header, message.peer, 0, message=message)
        if error is None:
            message.status, message.ack_code, message.ack, message.error = (
                Status.PROCESSED,
                "AA",
                ack_build(header, code="AA"),
                "",
            )
            return _outcome_save(message)
        transaction.set_rollback(True)
    _refusal_set(message, header, error)
    return _outcome_save(message)


def message_rerun(*, text, peer, message=None):
    """Run a message accepted earlier again (an order held for an unmapped code, once the
    code is mapped), all or nothing; returns None, or the HL7Error that refused it. Its log
    row keeps the AA it was answered with."""
    header = header_read(text)
    with transaction.atomic():
        error = _process(text, header, peer, 0, message=message)
        if error is not None:
            transaction.set_rollback(True)
    return error


def _log_row(header, peer, text, oversize, digest):
    """The unsaved log row of an inbound message, without its outcome."""
    return HL7Message(
        direction=HL7Message.Direction.IN, peer=peer[:255], sending_application=header.sending_application[:180],
        sending_facility=header.sending_facility[:180], control_id=header.control_id[:199], digest=digest,
        message_type=header.message_type[:32], version=header.version[:16],
        raw=text if not oversize else text + f"\n[... {oversize} bytes in all; the rest was not kept]",
    )  # fmt: skip


def _refusal_set(message, header, error):
    """``message`` refused: AE, or AR for what we do not accept at all, with its ACK."""
    message.status = Status.REJECTED if error.reject else Status.ERROR
    message.ack_code = "AR" if error.reject else "AE"
    message.ack = ack_build(header, code=message.ack_code, error=error)
    message.error = str(error.args[0])[:2000]


def _outcome_save(message):
    message.updated = now()
    message.save(update_fields=["status", "ack_code", "ack", "error", "updated"])
    return message.ack


def _seen_before(header, digest):
    """The first ACK to a message seen before (same sender, control id and content: resent, or
    sent on another connection at the same moment), counted as a repeat."""
    earlier = HL7Message.objects.filter(
        direction=HL7Message.Direction.IN, sending_application=header.sending_application[:180],
        sending_facility=header.sending_facility[:180], control_id=header.control_id[:199], digest=digest,
    ).exclude(ack="").first()  # fmt: skip
    if earlier is None:
        return ack_build(header, code="AR", error=HL7Error("Duplicate message", code=205)).encode()
    HL7Message.objects.filter(pk=earlier.pk).update(repeats=earlier.repeats + 1, updated=now())
    return earlier.ack.encode()


def _process(text, header, peer, oversize, message=None):
    """Run the handler: None when it succeeded, else the HL7Error. It runs without a savepoint
    of its own: on an error the caller rolls back the whole transaction."""
    try:
        if not _allowed(header, peer):
            raise HL7Error(
                f"Sender {header.sending_application} at {peer} is not allowed", code=207, reject=True
            )
        if oversize:
            raise HL7Error(
                f"The message is {oversize} bytes; the limit is {settings.HL7_MAX_MESSAGE_BYTES}", reject=True
            )
        handler = HANDLERS.get(header.message_type)
        if handler is None:
            known = {t.split("^")[0] for t in HANDLERS}
            kind = header.message_type.split(header.component)[0]
            raise HL7Error(
                f"{header.message_type.replace(header.component, ' ') or 'A message without a type'} is not accepted",
                code=201 if kind in known else 200, segment="MSH", field=9, reject=True,
            )  # fmt: skip
        structure_check(text, header)
        handler(Received(text, header, peer, message))
    except HL7Error as error:
        return error
    except ValidationError as error:
        return _validation_error(error)
    except Exception as error:  # a bug must not drop the connection: AE, logged with the trace
        log.exception("HL7 %s %s from %s failed", header.message_type, header.control_id, peer)
        return HL7Error(f"Internal error: {type(error).__name__}", code=207)
    return None


def _validation_error(error):
    """A service's ValidationError, named by the HL7 field it came from where we know it."""
    fields = {"name": ("PID", 5), "birth_date": ("PID", 7), "sex": ("PID", 8), "species": ("PID", 35),
              "breed": ("PID", 36), "microchip": ("PID", 3), "kg": ("OBX", 5)}  # fmt: skip
    if hasattr(error, "message_dict"):
        name, messages = next(iter(error.message_dict.items()))
        segment, field = fields.get(name, ("", 0))
        return HL7Error(f"{name}: {' '.join(messages)}", code=102, segment=segment, field=field)
    return HL7Error(" ".join(error.messages), code=207)


# --- ADT: patients and owners ---------------------------------------------------------------


def _coded(received, seg, n, lookup, kind):
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


def _patient_ids(received, pid):
    """PID-3 identifiers: (assigning authority or our sender, id). The first is the PMS's own.
    Older senders put the animal's id in PID-2 (Patient ID, external) and leave PID-3 empty."""
    ids = []
    for n in (3, 2):
        for rep in pid.repeats(n):
            value = pid.component(n, 1, rep)
            authority = pid.component(n, 4, rep).split("&")[0]
            if value:
                ids.append((f"hl7:{authority}" if authority else received.system, value))
        if ids:
            return ids
    raise HL7Error("PID-3 (patient identifier) is empty, and so is PID-2", code=101, segment="PID", field=3)


def _animal_name(pid):
    """PID-5: the animal's name is the given name when the sender writes OwnerFamily^Animal
    (as DICOM does), else the family component."""
    family, given = pid.component(5, 1), pid.component(5, 2)
    name = given or family
    if not name:
        raise HL7Error("PID-5 (the animal's name) is empty", code=101, segment="PID", field=5)
    return name


def _phone(seg, n, repetition=None):
    """XTN: the number as written (XTN-1), else unformatted (XTN-12), else area + local."""
    parts = seg.components(n, repetition) + [""] * 12
    return (parts[0] or parts[11] or (parts[5] + parts[6])).strip()


def _owner(received, patient):
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
    fields = {"family_name": family[:64], "given_name": given[:64]}
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


def _weight(received):
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


def _is_standin(species_id):
    return UnmappedCode.objects.filter(species_id=species_id).exists()


def adt_register(received):
    """ADT A01/A04/A05/A08/A28/A31: create or update the animal (and its owner)."""
    from integrations.hl7.messages import hl7_date

    pid = received.one("PID")
    ids = _patient_ids(received, pid)
    patient = found_by = None
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
    fields = {
        "name": _animal_name(pid)[:64],
        "birth_date": hl7_date(pid[7], segment="PID", field=7),
        "sex": SEX.get(pid[8].upper(), Patient.Sex.UNKNOWN),
    }
    if species is not None:
        fields["species"] = species
    if unmapped_breed is not None:
        # The stand-in of the animal's species, or (a code another species' stand-in has) text.
        breed = breed_standin(unmapped=unmapped_breed, species=species or patient.species)
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


def _visit(received, patient):
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


def adt_merge(received):
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


def adt_visit_end(received):
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


# --- ORM^O01 / OMI^O23: imaging orders ------------------------------------------------------


def _order_start(received, orc, obr):
    """When: TQ1-7 (2.5 on), else ORC-7 / OBR-27 quantity-timing start (TQ.4), else OBR-36
    scheduled time, else OBR-6 requested time (where 2.x senders without TQ1 put it), else
    OBR-7; else ORC-9, when the order was placed (a walk-in), else now."""
    from integrations.hl7.messages import hl7_datetime

    tq1 = received.one("TQ1", required=False)
    candidates = [("TQ1", 7, tq1[7] if tq1 else ""), ("ORC", 7, orc.component(7, 4)),
                  ("OBR", 27, obr.component(27, 4)), ("OBR", 36, obr[36]), ("OBR", 6, obr[6]),
                  ("OBR", 7, obr[7]), ("ORC", 9, orc[9])]  # fmt: skip
    for segment, field, value in candidates:
        if value:
            return hl7_datetime(value, segment=segment, field=field)
    return now()


def _provider(seg, n):
    """XCN (id^family^given…) as a DICOM-style person name Family^Given."""
    family, given = seg.component(n, 2), seg.component(n, 3)
    return "^".join(p for p in (family, given) if p)[:64] if family or given else seg.component(n, 1)[:64]


def order_message(received):
    """ORM^O01 / OMI^O23: ORC-1 NW (new), XO/SC (changed), CA (cancel), DC (discontinue)."""
    from imaging.models import ImagingOrder
    from imaging.orders import services as orders

    orc, obr = received.one("ORC"), received.one("OBR")
    control = orc[1].upper()
    placer = (orc.component(2, 1) or obr.component(2, 1))[:64]
    if not placer:
        raise HL7Error("ORC-2 (placer order number) is empty", code=101, segment="ORC", field=2)
    existing = ImagingOrder.objects.filter(placer_order_number=placer).first()
    held = None
    if existing is None:  # an order waiting for its service code to be mapped, perhaps
        held = HL7HeldOrder.objects.filter(sending_application=received.system, placer_order_number=placer)
        held = held.first()
    if held is not None and control in ("CA", "DC"):
        held.delete()  # never made: nothing to cancel but the wait
        return None
    if control in ("CA", "DC", "XO", "SC") and existing is None and held is None:
        raise HL7Error(f"ORC-2: no order with placer number {placer}", code=204, segment="ORC", field=2)
    if control == "CA":
        return orders.order_cancel(
            actor=received.actor, order=existing, reason=orc.component(16, 2) or "cancelled by the PMS"
        )
    if control == "DC":
        return orders.order_status_set(
            actor=received.actor, order=existing, status=ImagingOrder.Status.DISCONTINUED
        )
    if control not in ("NW", "XO", "SC"):
        raise HL7Error(
            f"ORC-1 '{control}' is not an order control we accept (NW, XO, SC, CA, DC)",
            code=103,
            segment="ORC",
            field=1,
        )
    details = {
        "reason": " ".join(p for p in (obr.component(31, 2) or obr.component(31, 1), obr[13]) if p)[:2000],
        "referring_vet": _provider(obr, 16) or _provider(orc, 12),
        "filler_order_number": (orc.component(3, 1) or obr.component(3, 1))[:64],
    }
    start = _order_start(received, orc, obr)
    if existing is not None:  # NW again (a resend under a new control id), XO or SC: a change
        if existing.scheduled_start != start and existing.status in ("scheduled", "arrived", "discontinued"):
            orders.order_reschedule(actor=received.actor, order=existing, scheduled_start=start)
        return orders.order_update(actor=received.actor, order=existing, fields=details)
    # New (or a change to one still waiting): made now if its service code is known.
    code, text, system = obr.component(4, 1), obr.component(4, 2), obr.component(4, 3)
    if not code:
        raise HL7Error("OBR-4 (universal service identifier) is empty", code=101, segment="OBR", field=4)
    procedure = _procedure(received, code, system)
    patient = adt_register(received)
    if procedure is None:
        unmapped = unmapped_code_seen(
            system=system or received.system, kind=CodeMapping.Kind.PROCEDURE, code=code, text=text,
            example={"control_id": received.header.control_id[:64], "sender": received.system,
                     "placer": placer, "patient": patient.patient_id},
        )  # fmt: skip
        return _hold(received, placer, unmapped, f"OBR-4 service code {code} ({text})")
    waiting_for = _species_unmapped_for(procedure, patient)
    if waiting_for is not None:
        return _hold(received, placer, waiting_for, f"PID-35 species code {waiting_for.external_code}")
    if held is not None:
        held.delete()
    return orders.order_create(
        actor=received.actor, patient=patient, procedure=procedure, scheduled_start=start,
        placer_order_number=placer, **details,
    )  # fmt: skip


def _procedure(received, code, system):
    """OBR-4 through the crosswalk (the sender's coding system, else the sender), else our
    catalog's own code."""
    from imaging.models import Procedure

    for name in dict.fromkeys((system or received.system, received.system)):
        mapping = CodeMapping.objects.filter(system=name, kind=CodeMapping.Kind.PROCEDURE, external_code=code)
        mapping = mapping.select_related("procedure").first()
        if mapping is not None and mapping.procedure.active:
            return mapping.procedure
    return Procedure.objects.filter(code=code, active=True).first()


def _species_unmapped_for(procedure, patient):
    """The unmapped species code an animal's stand-in species stands for, when ``procedure``
    is offered for some species only: whether it may be done waits for the mapping too."""
    if not procedure.species.exists():
        return None
    return UnmappedCode.objects.filter(species_id=patient.species_id).first()


def _hold(received, placer, unmapped, what):
    """An order that cannot be made until ``unmapped`` is mapped (a service code neither the
    crosswalk nor the catalog knows, or a species that the procedure's species limit needs)
    is not refused (the PMS would lose it) but waits with its message, listed with the code,
    until an admin maps it (integrations/hl7/held.py makes it then). Its animal is registered."""
    held, _ = HL7HeldOrder.objects.update_or_create(
        sending_application=received.system, placer_order_number=placer,
        defaults={"code": unmapped, "message": received.message, "raw": received.text,
                  "peer": received.peer[:255], "error": ""},
    )  # fmt: skip
    log.warning("HL7 order %s from %s held: %s is not mapped", placer, received.system, what)
    return held


HANDLERS = {
    "ORM^O01": order_message,
    "OMI^O23": order_message,
    **{f"ADT^{event}": adt_register for event in ("A01", "A04", "A05", "A08", "A28", "A31")},
    "ADT^A40": adt_merge,
    "ADT^A03": adt_visit_end,
    "ADT^A11": adt_visit_end,
}
