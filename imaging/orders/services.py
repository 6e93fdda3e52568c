"""Imaging orders: scheduling and every status change.

The web UI, the DICOM node (MPPS, images arriving), HL7 and REST all call these services; each
is keyword-only and atomic, checks everything before it changes anything (ValidationError keyed
by field, worded for the person at the desk), and records who changed what in the audit log and
the order's status history.
"""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.timezone import is_naive, localtime, now
from pydicom.uid import generate_uid

from imaging.models import ImagingOrder, Modality, OrderStatusChange, Procedure
from imaging.orders import events
from patients.models import Patient
from patients.selectors import patient_resolve
from patients.services import weight_record
from vetclinic import clock
from vetclinic.audit.models import Channel
from vetclinic.audit.services import Actor, audit_record, changes_apply

Status = ImagingOrder.Status
# The code of a ValidationError that is about the order's state, not the input (REST: 409).
STATE = "invalid_state"
DETAIL_FIELDS = {"reason", "referring_vet", "performing_vet", "priority", "weight_kg", "visit",
                 "placer_order_number", "filler_order_number", "teleradiology"}  # fmt: skip


def accession_number(pk: int) -> str:
    """Prefix + the order's number: unique, at most 16 characters (SH, PS3.5 6.2)."""
    return f"{settings.ACCESSION_PREFIX}{pk:08d}"[:16]


def study_instance_uid_new() -> str:
    """Under the clinic's UID root when it has one, else a UUID-derived 2.25 UID (PS3.5 B.2)."""
    return generate_uid(prefix=f"{settings.DICOM_UID_ROOT}." if settings.DICOM_UID_ROOT else None)


def _station_for(procedure: Procedure, station: Modality | None) -> Modality | None:
    """The station given, checked; or the only active station of the procedure's modality."""
    if station is None:
        stations = list(Modality.objects.filter(active=True, modality_type=procedure.modality_type)[:2])
        return stations[0] if len(stations) == 1 else None
    if not station.active:
        raise ValidationError({"station": f"{station.ae_title} is not in use."})
    if station.modality_type != procedure.modality_type:
        raise ValidationError(
            {"station": f"{station.ae_title} is a {station.modality_type} station; "
                        f"{procedure.name} needs {procedure.modality_type}."}
        )  # fmt: skip
    return station


def _procedure_check(procedure: Procedure, patient: Patient) -> None:
    if not procedure.active:
        raise ValidationError({"procedure": f"{procedure.name} is no longer offered."})
    species = list(procedure.species.all())
    if species and patient.species not in species:
        raise ValidationError(
            {"procedure": f"{procedure.name} is not offered for a {patient.species.name.lower()}."}
        )


def _start_check(scheduled_start: datetime | None) -> None:
    if scheduled_start is None:
        raise ValidationError({"scheduled_start": "Choose a date and time."})
    if is_naive(scheduled_start):
        raise ValueError("scheduled_start must be timezone-aware")


def start_passed(scheduled_start: datetime) -> bool:
    """Whether a start time lies before the current slot (the clinic's clock)."""
    return scheduled_start < clock.now() - timedelta(minutes=settings.SLOT_MINUTES)


def _past_check(scheduled_start: datetime, *, actor: Actor, past_ok: bool) -> None:
    """At the desk, a start that has passed is a slip (the wrong day, 2 for 14) and an order no
    modality would look for: it is refused unless the person says the exam took place already
    (an emergency imaged before it was booked). A start within the last slot is "now": the
    animal on the table. A PMS (HL7, REST), the DICOM node and imports record what happened,
    late as it may reach us (an exam registered afterwards, messages held by an interface engine
    during an outage): refusing those would lose the order, so they are not checked."""
    if past_ok or actor.channel != Channel.UI:
        return
    if start_passed(scheduled_start):
        when = localtime(scheduled_start)
        raise ValidationError({"scheduled_start": ValidationError(
            f"{when:%a %d %b %Y %H:%M} has passed. Choose a time ahead, or tick “Done already” "
            "to record an exam that has taken place.", code="past")})  # fmt: skip


def _history(*, actor: Actor, order: ImagingOrder, old: str, new: str, note: str = "") -> None:
    OrderStatusChange.objects.create(
        order=order, old=old, new=new, at=order.status_changed, channel=actor.channel,
        by=(actor.user.get_username() if isinstance(actor.user, User) and actor.user.pk else actor.name)[:200],
        note=note[:200],
    )  # fmt: skip


@transaction.atomic
def order_create(
    *,
    actor: Actor,
    patient: Patient,
    procedure: Procedure,
    scheduled_start: datetime,
    station: Modality | None = None,
    duration_minutes: int | None = None,
    past_ok: bool = False,
    **details: Any,
) -> ImagingOrder:
    """Schedule a procedure for an animal; it is in the worklist as soon as this commits.

    ``details``: reason, referring_vet, performing_vet, priority, weight_kg (also recorded in
    the animal's weight history), visit, placer_order_number, filler_order_number, teleradiology.
    ``past_ok``: the web UI's person says the exam took place already (see _past_check).
    """
    unknown = set(details) - DETAIL_FIELDS
    if unknown:
        raise ValueError(f"unknown order fields: {sorted(unknown)}")
    patient = patient_resolve(Patient.objects.select_related("species").get(pk=patient.pk))
    if patient.deceased:
        raise ValidationError({"patient": f"{patient.name} is recorded as deceased."})
    _procedure_check(procedure, patient)
    station = _station_for(procedure, station)
    _start_check(scheduled_start)
    _past_check(scheduled_start, actor=actor, past_ok=past_ok)
    visit = details.get("visit")
    if visit is not None and visit.patient_id != patient.pk:
        raise ValidationError({"visit": "This visit is another animal's."})
    order = ImagingOrder(
        patient=patient,
        procedure=procedure,
        station=station,
        modality_type=procedure.modality_type,
        scheduled_start=scheduled_start,
        duration_minutes=duration_minutes or procedure.duration_minutes,
        study_instance_uid=study_instance_uid_new(),
        **details,
    )
    order.full_clean(exclude=["accession_number", "study_instance_uid"])
    order.save()
    order.accession_number = accession_number(order.pk)
    order.requested_procedure_id = f"RP{order.pk}"[:16]
    order.scheduled_step_id = f"SPS{order.pk}"[:16]
    order.save(update_fields=["accession_number", "requested_procedure_id", "scheduled_step_id"])
    if order.weight_kg is not None:
        day = localtime(scheduled_start).date()  # the clinic's day of the exam
        weight_record(actor=actor, patient=patient, kg=order.weight_kg, measured_on=day)
    _history(actor=actor, order=order, old="", new=order.status)
    audit_record(
        actor=actor, instance=order, action="create",
        changes={"procedure": [None, procedure.name], "patient": [None, str(patient)],
                 "scheduled_start": [None, scheduled_start.isoformat()],
                 "station": [None, station.ae_title if station else None]},
    )  # fmt: skip
    return order


def _locked(order: ImagingOrder) -> ImagingOrder:
    return ImagingOrder.objects.select_for_update().select_related("procedure", "patient").get(pk=order.pk)


@transaction.atomic
def order_status_set(*, actor: Actor, order: ImagingOrder, status: str, note: str = "") -> ImagingOrder:
    """Move an order to ``status`` if its current status allows it (ImagingOrder.TRANSITIONS).

    Setting the status it already has changes nothing (a repeated MPPS or HL7 message).
    """
    order = _locked(order)
    if status not in Status.values:
        raise ValidationError({"status": f"Unknown status '{status}'."})
    if order.status == status:
        return order
    if not order.can_become(status):
        raise ValidationError(
            {"status": ValidationError(
                f"Order {order.accession_number} is {order.get_status_display().lower()}; "
                f"it cannot become {Status(status).label.lower()}.", code=STATE)}
        )  # fmt: skip
    old = order.status
    order.status, order.status_changed, order.updated = status, now(), now()
    order.save(update_fields=["status", "status_changed", "updated"])
    _history(actor=actor, order=order, old=old, new=status, note=note)
    audit_record(actor=actor, instance=order, action="status", changes={"status": [old, status]})
    events.order_event_publish(order, events.ORDER_STATUS_CHANGED, old=old, new=status)
    if status == Status.COMPLETED:
        events.order_event_publish(order, events.ORDER_COMPLETED)
    return order


def order_arrive(*, actor: Actor, order: ImagingOrder) -> ImagingOrder:
    """The animal is here: the modality's worklist shows it as arrived."""
    return order_status_set(actor=actor, order=order, status=Status.ARRIVED)


def order_cancel(*, actor: Actor, order: ImagingOrder, reason: str = "") -> ImagingOrder:
    return order_status_set(actor=actor, order=order, status=Status.CANCELLED, note=reason)


@transaction.atomic
def order_reschedule(
    *,
    actor: Actor,
    order: ImagingOrder,
    scheduled_start: datetime,
    station: Modality | None = None,
    duration_minutes: int | None = None,
    past_ok: bool = False,
) -> ImagingOrder:
    """A new time (and station). An order the modality discontinued becomes scheduled again.
    A new start is checked as in order_create; the start it has is not."""
    order = _locked(order)
    if order.status not in (Status.SCHEDULED, Status.ARRIVED, Status.DISCONTINUED):
        raise ValidationError(
            {"scheduled_start": ValidationError(
                f"Order {order.accession_number} is {order.get_status_display().lower()}; "
                "it can no longer be rescheduled.", code=STATE)}
        )  # fmt: skip
    _start_check(scheduled_start)
    if scheduled_start != order.scheduled_start:
        _past_check(scheduled_start, actor=actor, past_ok=past_ok)
    station = _station_for(order.procedure, station) if station is not None else order.station
    changes = changes_apply(order, {
        "scheduled_start": scheduled_start, "station": station,
        "duration_minutes": duration_minutes or order.duration_minutes,
    })  # fmt: skip
    if not changes and order.status != Status.DISCONTINUED:
        return order
    order.updated = now()
    order.save()
    audit_record(actor=actor, instance=order, action="reschedule", changes=changes)
    if order.status == Status.DISCONTINUED:
        order = order_status_set(actor=actor, order=order, status=Status.SCHEDULED, note="rescheduled")
    return order


@transaction.atomic
def order_update(*, actor: Actor, order: ImagingOrder, fields: dict[str, Any]) -> ImagingOrder:
    """Change the order's details (reason, referring vet, priority, weight, teleradiology, ...).

    Values it has already change nothing and write nothing (the UI's form saved unchanged, a PMS
    resending its order). A change to a completed, reported or cancelled order is refused
    (ImagingOrder.EDITABLE_STATUSES); a new weight on the day goes into the animal's weight
    history, as in order_create.
    """
    unknown = set(fields) - DETAIL_FIELDS
    if unknown:
        raise ValueError(f"unknown order fields: {sorted(unknown)}")
    order = _locked(order)
    changes = changes_apply(order, fields)
    if not changes:
        return order
    if not order.details_editable():
        raise ValidationError(
            {"status": ValidationError(
                f"Order {order.accession_number} is {order.get_status_display().lower()}; "
                "its details can no longer be changed.", code=STATE)}
        )  # fmt: skip
    if "visit" in changes and order.visit is not None and order.visit.patient_id != order.patient_id:
        raise ValidationError({"visit": "This visit is another animal's."})
    if "weight_kg" in changes and order.weight_kg is not None and order.weight_kg <= 0:
        raise ValidationError({"weight_kg": "A weight must be more than 0 kg."})
    order.full_clean(exclude=["accession_number", "study_instance_uid"])
    order.updated = now()
    order.save()
    if "weight_kg" in changes and order.weight_kg is not None:
        day = localtime(order.scheduled_start).date()  # the clinic's day of the exam
        weight_record(actor=actor, patient=order.patient, kg=order.weight_kg, measured_on=day)
    audit_record(actor=actor, instance=order, action="update", changes=changes)
    return order


@transaction.atomic
def order_images_received(*, actor: Actor, order: ImagingOrder) -> ImagingOrder:
    """Images for the order arrived (imaging/ingest/linking.py): record when, and an order the
    modality did not report on over MPPS is now in progress."""
    order = _locked(order)
    if order.images_received_at is None:
        order.images_received_at = now()
        order.save(update_fields=["images_received_at"])
        audit_record(
            actor=actor, instance=order, action="images_received", changes={"images_received": [None, "yes"]}
        )
        events.order_event_publish(order, events.STUDY_RECEIVED)
    if order.status in (Status.SCHEDULED, Status.ARRIVED):
        order = order_status_set(actor=actor, order=order, status=Status.IN_PROGRESS, note="images received")
    return order
