"""Inbound HL7 imaging orders (ORM^O01 / OMI^O23, integrations/hl7/inbound.py passes them on):
made, changed, cancelled or discontinued through the services the UI uses, or held while a code
they need is not mapped."""

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils.timezone import now

from integrations.hl7.inbound_adt import adt_register
from integrations.hl7.messages import HL7Error, Segment
from integrations.models import HL7HeldOrder
from patients.crosswalk import unmapped_code_seen
from patients.models import CodeMapping, Patient, UnmappedCode

if TYPE_CHECKING:  # inbound.py imports the handlers; imaging's models are imported when used
    from imaging.models import ImagingOrder, Procedure
    from integrations.hl7.inbound import Received

log = logging.getLogger("integrations.hl7")


def _order_start(received: "Received", orc: Segment, obr: Segment) -> datetime:
    """When: TQ1-7 (2.5 on), else ORC-7 / OBR-27 quantity-timing start (TQ.4), else OBR-36
    scheduled time, else OBR-6 requested time (where 2.x senders without TQ1 put it), else
    OBR-7; else ORC-9, when the order was placed (a walk-in), else now."""
    from integrations.hl7.messages import hl7_datetime

    tq1 = received.one("TQ1", required=False)
    candidates = [("TQ1", 7, tq1[7] if tq1 else ""), ("ORC", 7, orc.component(7, 4)),
                  ("OBR", 27, obr.component(27, 4)), ("OBR", 36, obr[36]), ("OBR", 6, obr[6]),
                  ("OBR", 7, obr[7]), ("ORC", 9, orc[9])]  # fmt: skip
    for segment, field, value in candidates:
        moment = hl7_datetime(value, segment=segment, field=field)  # None: empty, or only blanks
        if moment is not None:
            return moment
    return now()


def _provider(seg: Segment, n: int) -> str:
    """XCN (id^family^given…) as a DICOM-style person name Family^Given."""
    family, given = seg.component(n, 2), seg.component(n, 3)
    return "^".join(p for p in (family, given) if p)[:64] if family or given else seg.component(n, 1)[:64]


def _no_such_order(placer: str) -> HL7Error:
    return HL7Error(f"ORC-2: no order with placer number {placer}", code=204, segment="ORC", field=2)


def order_message(received: "Received") -> "ImagingOrder | HL7HeldOrder | None":
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
        held = HL7HeldOrder.objects.filter(
            sending_application=received.system, placer_order_number=placer
        ).first()
    if control in ("CA", "DC"):
        if held is not None:
            held.delete()  # never made: nothing to cancel but the wait
            return None
        if existing is None:
            raise _no_such_order(placer)
        if control == "CA":
            return orders.order_cancel(
                actor=received.actor, order=existing, reason=orc.component(16, 2) or "cancelled by the PMS"
            )
        return orders.order_status_set(
            actor=received.actor, order=existing, status=ImagingOrder.Status.DISCONTINUED
        )
    if control in ("XO", "SC") and existing is None and held is None:
        raise _no_such_order(placer)
    if control not in ("NW", "XO", "SC"):
        raise HL7Error(
            f"ORC-1 '{control}' is not an order control we accept (NW, XO, SC, CA, DC)",
            code=103,
            segment="ORC",
            field=1,
        )
    details: dict[str, Any] = {
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


def _procedure(received: "Received", code: str, system: str) -> "Procedure | None":
    """OBR-4 through the crosswalk (the sender's coding system, else the sender), else our
    catalog's own code."""
    from imaging.models import Procedure

    for name in dict.fromkeys((system or received.system, received.system)):
        mapping = (
            CodeMapping.objects.filter(system=name, kind=CodeMapping.Kind.PROCEDURE, external_code=code)
            .select_related("procedure")
            .first()
        )
        # (A procedure mapping always has its procedure: constraint code_mapping_target.)
        if mapping is not None and mapping.procedure is not None and mapping.procedure.active:
            return mapping.procedure
    return Procedure.objects.filter(code=code, active=True).first()


def _species_unmapped_for(procedure: "Procedure", patient: Patient) -> UnmappedCode | None:
    """The unmapped species code an animal's stand-in species stands for, when ``procedure``
    is offered for some species only: whether it may be done waits for the mapping too."""
    if not procedure.species.exists():
        return None
    return UnmappedCode.objects.filter(species_id=patient.species_id).first()


def _hold(received: "Received", placer: str, unmapped: UnmappedCode, what: str) -> HL7HeldOrder:
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
