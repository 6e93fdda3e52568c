"""Modality Performed Procedure Steps (PS3.4 Annex F): what the modality says it did.

N-CREATE (``mpps_create``) opens a step IN PROGRESS and moves its order along; N-SET
(``mpps_update``) ends it COMPLETED or DISCONTINUED and records the series it made. Anything the
standard says to refuse raises StepRefused with a StepRefusal, a reason that the DICOM handler
maps to its status (PS3.4 F.7.2.1.4 / F.7.2.2.4), and a sentence for the Error Comment.
"""

import enum
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.timezone import get_current_timezone, make_aware, now
from pydicom.dataset import Dataset

from imaging.models import ImagingOrder, PerformedProcedureStep
from imaging.orders import services as orders
from vetclinic.audit.services import Actor, audit_record

log = logging.getLogger(__name__)
Step = PerformedProcedureStep.Status
# The order status a final step puts the order in.
ORDER_STATUS: dict[str, str] = {Step.IN_PROGRESS: ImagingOrder.Status.IN_PROGRESS, Step.COMPLETED: ImagingOrder.Status.COMPLETED,
                Step.DISCONTINUED: ImagingOrder.Status.DISCONTINUED}  # fmt: skip


class StepRefusal(enum.Enum):
    """Why a step's creation or change is refused (the reasons of PS3.4 F.7.2.1.4 and F.7.2.2.4)."""

    ALREADY_EXISTS = "already exists"
    NO_SUCH_STEP = "no such step"
    MISSING_ATTRIBUTE = "missing attribute"
    INVALID_ATTRIBUTE_VALUE = "invalid attribute value"
    FINAL = "may no longer be updated"  # the step is COMPLETED or DISCONTINUED


class StepRefused(Exception):
    def __init__(self, reason: StepRefusal, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, str(detail)


def _moment(ds: Dataset, date_keyword: str, time_keyword: str) -> datetime | None:
    text_date, text_time = str(ds.get(date_keyword) or ""), str(ds.get(time_keyword) or "")
    if not text_date:
        return None
    try:
        day = datetime.strptime(text_date[:8], "%Y%m%d")
        clock = text_time.replace(":", "").split(".")[0].ljust(6, "0")[:6] if text_time else "000000"
        moment = day.replace(hour=int(clock[:2]), minute=int(clock[2:4]), second=int(clock[4:6]))
    except ValueError:
        raise StepRefused(
            StepRefusal.INVALID_ATTRIBUTE_VALUE, f"{date_keyword}/{time_keyword}: not a date and time"
        ) from None
    return make_aware(moment, get_current_timezone())


def _order_for(scheduled_steps: Iterable[Dataset]) -> ImagingOrder | None:
    """The order a step performs, from Scheduled Step Attributes Sequence (F.7.2.1): accession
    number, Study Instance UID, requested procedure or scheduled step ID, in that order."""
    for item in scheduled_steps:
        for keyword, field in (
            ("AccessionNumber", "accession_number"),
            ("StudyInstanceUID", "study_instance_uid"),
            ("ScheduledProcedureStepID", "scheduled_step_id"),
            ("RequestedProcedureID", "requested_procedure_id"),
        ):
            value = str(item.get(keyword) or "").strip()
            if value:
                order = ImagingOrder.objects.filter(**{field: value}).first()
                if order is not None:
                    return order
    return None


def _series(ds: Dataset) -> list[dict[str, Any]]:
    return [
        {
            "series_instance_uid": str(item.get("SeriesInstanceUID", "")),
            "description": str(item.get("SeriesDescription", "")),
            "images": len(item.get("ReferencedImageSequence") or []),
        }
        for item in ds.get("PerformedSeriesSequence") or []
    ]


def _status(ds: Dataset) -> str:
    value = str(ds.get("PerformedProcedureStepStatus") or "").strip().upper()
    if value not in Step.values:
        raise StepRefused(
            StepRefusal.INVALID_ATTRIBUTE_VALUE, f"PerformedProcedureStepStatus '{value[:20]}' is not valid"
        )
    return value


def _order_move(*, actor: Actor, step: PerformedProcedureStep, note: str) -> None:
    """Move the step's order along; a report of an exam never fails because the order's
    status cannot follow (a cancelled order imaged anyway): that is logged on the order."""
    if step.order is None:
        return
    try:
        orders.order_status_set(actor=actor, order=step.order, status=ORDER_STATUS[step.status], note=note)
    except ValidationError as error:  # a transition the order does not allow
        log.warning(
            "MPPS %s: order %s not moved: %s", step.sop_instance_uid, step.order.accession_number, error
        )
        audit_record(actor=actor, instance=step.order, action="mpps_ignored",
                     changes={"mpps": [None, f"{step.status} not applied: order is {step.order.status}"]})  # fmt: skip


@transaction.atomic
def mpps_create(
    *, actor: Actor, sop_instance_uid: str, attributes: Dataset, station_ae: str = ""
) -> PerformedProcedureStep:
    """N-CREATE: a step starts (F.7.2.1)."""
    if PerformedProcedureStep.objects.filter(sop_instance_uid=sop_instance_uid).exists():
        raise StepRefused(StepRefusal.ALREADY_EXISTS, "This performed procedure step already exists")
    if "PerformedProcedureStepStatus" not in attributes:
        raise StepRefused(StepRefusal.MISSING_ATTRIBUTE, "PerformedProcedureStepStatus is missing")
    if _status(attributes) != Step.IN_PROGRESS:
        raise StepRefused(StepRefusal.INVALID_ATTRIBUTE_VALUE, "A new step must be IN PROGRESS (F.7.2.1.2)")
    if "ScheduledStepAttributesSequence" not in attributes:
        raise StepRefused(StepRefusal.MISSING_ATTRIBUTE, "ScheduledStepAttributesSequence is missing")
    step = PerformedProcedureStep.objects.create(
        sop_instance_uid=sop_instance_uid,
        order=_order_for(attributes.ScheduledStepAttributesSequence),
        status=Step.IN_PROGRESS,
        station_ae=str(attributes.get("PerformedStationAETitle") or station_ae)[:16],
        modality=str(attributes.get("Modality") or "")[:16],
        started_at=_moment(attributes, "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime")
        or now(),
        performed_series=_series(attributes),
        attributes=attributes.to_json_dict(),
        received_from=station_ae[:16],
    )
    _order_move(actor=actor, step=step, note=f"MPPS from {step.station_ae}")
    return step


@transaction.atomic
def mpps_update(*, actor: Actor, sop_instance_uid: str, modifications: Dataset) -> PerformedProcedureStep:
    """N-SET: a step changes or ends (F.7.2.2); a final step may no longer change."""
    step = (
        PerformedProcedureStep.objects.select_for_update().filter(sop_instance_uid=sop_instance_uid).first()
    )
    if step is None:
        raise StepRefused(StepRefusal.NO_SUCH_STEP, "No such performed procedure step")
    if step.status != Step.IN_PROGRESS:
        # F.7.2.2.4: Processing failure, "Performed Procedure Step Object may no longer be updated"
        raise StepRefused(StepRefusal.FINAL, f"The step is {step.status}; it may no longer be updated")
    status = _status(modifications) if "PerformedProcedureStepStatus" in modifications else step.status
    merged = Dataset.from_json(step.attributes) if step.attributes else Dataset()
    for element in modifications:
        merged[element.tag] = element
    step.status = status
    step.attributes = merged.to_json_dict()
    if "PerformedSeriesSequence" in modifications:
        step.performed_series = _series(modifications)
    if status != Step.IN_PROGRESS:
        step.ended_at = (
            _moment(merged, "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime") or now()
        )
    step.updated = now()
    step.save()
    if status != Step.IN_PROGRESS:
        _order_move(actor=actor, step=step, note=f"MPPS {status.lower()} at {step.station_ae}")
    return step
