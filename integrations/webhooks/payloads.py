"""What a webhook says: small, with the field names the API uses, and links to look further.

A receiver learns what happened and to which record (our ids and its own external ids, status,
accession number, Study Instance UID); anything more it reads through the API.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.urls import reverse
from rest_framework.fields import DateField, DateTimeField

from imaging.models import ImagingOrder, Report, Study
from patients.models import Patient

_datetime, _date = DateTimeField(), DateField()


# A webhook's data: JSON, as the API documents it (docs/webhooks).
Data = dict[str, Any]


def _when(value: datetime | None) -> str | None:
    return _datetime.to_representation(value) if value else None


def _link(name: str, pk: int) -> str:
    return f"{settings.SITE_URL}{reverse(name, args=[pk])}"


def patient_data(patient: Patient) -> Data:
    return {
        "id": patient.pk,
        "patient_id": patient.patient_id,
        "name": patient.name,
        "external_ids": [{"system": e.system, "value": e.value} for e in patient.external_ids.all()],
        "merged_into": patient.merged_into_id,
        "url": _link("patient_detail", patient.pk),
    }


def order_data(order: ImagingOrder) -> Data:
    return {
        "id": order.pk,
        "accession_number": order.accession_number,
        "study_instance_uid": order.study_instance_uid,
        "status": order.status,
        "procedure": order.procedure.code,
        "modality_type": order.modality_type,
        "scheduled_start": _when(order.scheduled_start),
        "placer_order_number": order.placer_order_number,
        "filler_order_number": order.filler_order_number,
        "patient": order.patient_id,
        "url": _link("order_detail", order.pk),
    }


def study_data(study: Study | None) -> Data | None:
    if study is None:
        return None
    return {
        "id": study.pk,
        "study_instance_uid": study.study_instance_uid,
        "accession_number": study.accession_number,
        "study_date": _date.to_representation(study.study_date) if study.study_date else None,
        "order": study.order_id,
        "patient": study.patient_id,
        "viewer_url": _link("study_detail", study.pk),
    }


def patient_updated(patient: Patient, changed: Iterable[str] = ()) -> Data:
    """``changed``: the names of the fields that changed (all that were set, for a new animal)."""
    return {"patient": patient_data(patient), "changed": list(changed)}


def patient_merged(source: Patient) -> Data:
    """``source`` has been merged into another record, which is the one to use from now on."""
    target = source.merged_into  # always there for a record merged away (patient_merge)
    return {"patient": patient_data(source), "merged_into": patient_data(target) if target else None}


def order_status_changed(order: ImagingOrder, old: str | None = None, new: str | None = None) -> Data:
    """The status before and after: by the time this is built the order may have moved on."""
    order_ = order_data(order)
    order_["status"] = new or order.status
    return {"order": order_, "previous_status": old, "patient": patient_data(order.patient)}


def study_event(order: ImagingOrder, status: str | None = None) -> Data:
    """study.received and study.completed: the order, its animal and its (first) study."""
    order_ = order_data(order)
    if status:
        order_["status"] = status
    study = order.studies.order_by("id").first()
    return {"order": order_, "study": study_data(study), "patient": patient_data(order.patient)}


def report_data(report: Report, status: str | None = None, version: int | None = None) -> Data:
    """The report's state when it was signed (``status``/``version``: an amendment may follow
    before this is sent); its text is read through the API (``url``)."""
    return {
        "id": report.pk,
        "status": status or report.status,
        "version": version or report.version,
        "study": report.study_id,
        "signed_by": report.signed_by_name,
        "finalized_at": _when(report.finalized_at),
        "url": f"{settings.SITE_URL}{reverse('api_report', args=[report.pk])}",
        "viewer_url": _link("study_detail", report.study_id) + "#report",
    }


def report_finalized(order: ImagingOrder, report: Data | None = None) -> Data:
    """``report``: the details published with the event ({"id", "status", "version"}); the
    rest is the order's study event, with the reported study."""
    data = study_event(order)
    published = report or {}
    report_id: Any = published.get("id")  # None (nothing published) finds no report
    record = Report.objects.select_related("study").filter(pk=report_id).first()
    if record is not None:
        data["study"] = study_data(record.study)
        data["report"] = report_data(record, published.get("status"), published.get("version"))
    else:  # deleted since: say what was published
        data["report"] = report
    return data


def order_for(order_id: int) -> ImagingOrder | None:
    return (
        ImagingOrder.objects.select_related("procedure", "patient")
        .prefetch_related("patient__external_ids")
        .filter(pk=order_id)
        .first()
    )


def patient_for(patient_id: int) -> Patient | None:
    patients = Patient.objects.select_related("merged_into")
    return (
        patients.prefetch_related("external_ids", "merged_into__external_ids").filter(pk=patient_id).first()
    )
