"""Annotations into the study as DICOM, so that other viewers, Q/R and DICOMweb have them.

The measurements become a Comprehensive 3D SR whose content is TID 1500 Measurement Report
(PS3.16 TID 1500; PS3.3 A.35.13): one measurement group (TID 1501) per measured annotation,
its value with its UCUM unit (TID 300) and the image and frame it was measured on. Key images
become a Key Object Selection Document (PS3.3 A.35.4, document title "Of Interest", CID 7010).
highdicom builds both: its templates check the content tree's rules (value types, relationships,
required items) that a hand-made data set would get wrong quietly.

The objects carry the study's patient and study attributes (from its images, then the animal's
record when the study is linked, imaging/dicom/records/datasets.py) and are stored through
the same durable receive and ingest as a C-STORE (imaging/ingest/receive.py file_receive), so
they are indexed, linked and served like any received object.

Re-export: a version is exported once; exporting it again returns the same objects. A newer
version adds a new SR (and key object document) to the same two series, its Instance Number the
version's, the SR naming the one before in its Predecessor Documents Sequence (PS3.3
C.17.2.3): older SRs are never changed or removed, as a DICOM object is never changed in place.
"""

import io
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import highdicom as hd
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from pydicom import Dataset, dcmread
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from imaging.annotations.services import (
    ImageRef,
    annotations_current,
    export_mark,
    image_ref,
    vetpacs_result,
)
from imaging.dicom.records.datasets import patient_attributes_apply
from imaging.ingest import storage
from imaging.ingest.index import IndexMessage, Sender
from imaging.ingest.queueing import IngestBatch
from imaging.ingest.receive import file_receive
from imaging.models import AnnotationSet, AnnotationVersion, Instance, Study
from vetclinic.audit.services import Actor, audit_record

SR_SERIES_NUMBER, KO_SERIES_NUMBER = 9001, 9002  # after any modality's, predictably
MANUFACTURER = "VetPACS"
# Our own codes for what no standard vocabulary names (a coding scheme designator starting
# with "99" is a private one, PS3.16 8.1).
PRIVATE = "99VETPACS"
# The generic measurements have SNOMED CT concepts (PS3.16 CID 7469 uses them).
NAMES = {
    "length": codes.SCT.Length,
    "area": codes.SCT.Area,
    "angle": codes.SCT.Angle,
    "cobb": codes.SCT.Angle,
}
UNIT_MEANINGS = {
    "mm": "millimeter", "cm": "centimeter", "mm2": "square millimeter", "deg": "degree",
    "{vertebrae}": "vertebrae", "[hnsf'U]": "Hounsfield unit", "px": "pixel",
}  # fmt: skip
# Radiography (SNOMED CT 363680008 "Radiographic imaging procedure"): the procedure reported.
PROCEDURE = hd.sr.CodedConcept("363680008", "SCT", "Radiographic imaging procedure")


@dataclass(frozen=True)
class Export:
    version: int
    sr_sop_instance_uid: str
    ko_sop_instance_uid: str
    sr_series_uid: str
    ko_series_uid: str
    messages: list[IndexMessage]  # what was queued for indexing (empty when exported before)


def _measured(annotations: list[dict[str, Any]]) -> list[tuple[dict[str, Any], ImageRef]]:
    """The annotations with a numeric result and the image they are on."""
    found = []
    for annotation in annotations:
        result = vetpacs_result(annotation)
        ref = image_ref((annotation.get("metadata") or {}).get("referencedImageId") or "")
        value = result.get("value")
        if (
            ref is not None
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
            and result.get("unit")
        ):
            found.append((result, ref))
    return found


def _headers(study: Study, sops: set[str]) -> dict[str, Dataset]:
    """The headers of the study's images these SOP Instance UIDs name, read from storage."""
    headers: dict[str, Dataset] = {}
    for instance in Instance.objects.filter(series__study=study, sop_instance_uid__in=sops):
        data = storage.object_get(instance.storage_key)
        headers[instance.sop_instance_uid] = dcmread(io.BytesIO(data), stop_before_pixels=True)
    missing = sops - headers.keys()
    if missing:
        raise ValidationError({"annotations": f"Image {sorted(missing)[0]} is no longer in the study."})
    return headers


def _name(result: dict[str, Any]) -> hd.sr.CodedConcept:
    kind = str(result["kind"])
    if result.get("unit") == "mm2":
        kind = "area"  # an ellipse's or rectangle's area
    known = NAMES.get(kind)
    if known is not None:
        return hd.sr.CodedConcept(known.value, known.scheme_designator, known.meaning)
    return hd.sr.CodedConcept(kind[:16], PRIVATE, (result.get("label") or kind)[:64])


def _unit(unit: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(unit, "UCUM", UNIT_MEANINGS.get(unit, unit))


def _person_name(saved: AnnotationVersion) -> str:
    """Who saved the version as a DICOM person name, Family^Given (PS3.5 6.2.1.2): the
    account's names; an API client's name as a family name alone (the trailing caret says so)."""
    user = saved.saved_by
    if user is not None and (user.last_name or user.first_name):
        name = f"{user.last_name}^{user.first_name}"
    else:
        name = (saved.saved_by_name or "Unknown").replace("^", " ") + "^"
    return name[:64]


def _observer(saved: AnnotationVersion) -> hd.sr.ObserverContext:
    return hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=_person_name(saved)),
    )


def _source(header: Dataset, ref: ImageRef) -> dict[str, Any]:
    frames = [ref.frame] if int(header.get("NumberOfFrames") or 1) > 1 else None
    return {"referenced_sop_class_uid": header.SOPClassUID, "referenced_sop_instance_uid": header.SOPInstanceUID,
            "referenced_frame_numbers": frames}  # fmt: skip


def sr_build(
    *, saved: AnnotationVersion, headers: dict[str, Dataset], series_uid: str, previous: Dataset | None
) -> hd.sr.Comprehensive3DSR:
    """The TID 1500 Measurement Report of a saved version's measurements."""
    groups = []
    for index, (result, ref) in enumerate(_measured(saved.annotations), start=1):
        header = headers[ref.sop_instance_uid]
        measurement = hd.sr.Measurement(
            name=_name(result), value=float(result["value"]), unit=_unit(str(result["unit"])),
            referenced_images=[hd.sr.SourceImageForMeasurement(**_source(header, ref))],
        )  # fmt: skip
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                identifier=(result.get("text") or result.get("label") or f"Measurement {index}")[:64],
                uid=generate_uid(),
            ),
            measurements=[measurement],
            source_images=[hd.sr.SourceImageForMeasurementGroup(**_source(header, ref))],
        ))  # fmt: skip
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=_observer(saved)),
        procedure_reported=PROCEDURE,
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=list(headers.values()), content=report[0], series_instance_uid=series_uid,
        series_number=SR_SERIES_NUMBER, sop_instance_uid=generate_uid(), instance_number=saved.number,
        manufacturer=MANUFACTURER, institution_name=settings.CLINIC_NAME[:64], is_complete=True,
        previous_versions=[previous] if previous is not None else None, series_description="VetPACS measurements",
    )  # fmt: skip


def ko_build(*, saved: AnnotationVersion, headers: dict[str, Dataset], series_uid: str) -> Dataset:
    """The Key Object Selection Document naming the key images ("Of Interest")."""
    content = hd.ko.KeyObjectSelection(
        document_title=codes.DCM.OfInterest,
        referenced_objects=list(headers.values()),
        observer_person_context=_observer(saved),
        description=f"Key images, annotations v{saved.number}",
    )
    return hd.ko.KeyObjectSelectionDocument(
        evidence=list(headers.values()), content=content, series_instance_uid=series_uid,
        series_number=KO_SERIES_NUMBER, sop_instance_uid=generate_uid(), instance_number=saved.number,
        manufacturer=MANUFACTURER, institution_name=settings.CLINIC_NAME[:64], series_description="VetPACS key images",
    )  # fmt: skip


def _previous_sr(annotation_set: AnnotationSet, saved: AnnotationVersion) -> Dataset | None:
    earlier = annotation_set.versions.filter(number__lt=saved.number).exclude(sr_sop_instance_uid="").first()
    if earlier is None:
        return None
    instance = Instance.objects.filter(sop_instance_uid=earlier.sr_sop_instance_uid).first()
    if instance is None:  # not indexed yet: the new SR stands alone
        return None
    return dcmread(io.BytesIO(storage.object_get(instance.storage_key)), stop_before_pixels=True)


def _store(ds: Dataset, study: Study, sender: Sender, batch: IngestBatch | None) -> IndexMessage:
    if study.patient is not None:
        patient_attributes_apply(ds, study.patient)  # the record's, as a linked study's images
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "object.dcm")
        ds.save_as(path, enforce_file_format=True)
        return file_receive(
            path=path, calling_ae=settings.DICOM_AE_TITLE, batch=batch,
            study_instance_uid=study.study_instance_uid, sender=sender,
        )  # fmt: skip


def _sender(actor: Actor) -> Sender:
    user_id = getattr(actor.user, "pk", None)
    name = actor.name or (actor.user.get_username() if actor.user is not None else "")
    return {"channel": actor.channel, "name": name, "user_id": user_id}


@transaction.atomic
def annotations_export(*, actor: Actor, study: Study, batch: IngestBatch | None = None) -> Export:
    """Put the study's current annotations into it as a measurement SR and, when images are
    flagged, a key object selection; queued for indexing like a C-STORE (into ``batch`` if one
    is given). A version already exported is not exported again."""
    current = annotations_current(study=study)
    if current is None:
        raise ValidationError(
            {"annotations": "Nothing is saved for this study yet: save the annotations first."}
        )
    annotation_set = AnnotationSet.objects.select_for_update().get(pk=current.annotation_set_id)
    saved = annotation_set.versions.get(number=annotation_set.version)  # as it is now, locked
    if saved.exported_at is not None:
        return Export(saved.number, saved.sr_sop_instance_uid, saved.ko_sop_instance_uid,
                      annotation_set.sr_series_uid, annotation_set.ko_series_uid, [])  # fmt: skip
    measured = _measured(saved.annotations)
    keys = [ImageRef(k["seriesUid"], k["sopInstanceUid"], k.get("frame", 1)) for k in saved.key_images]
    if not measured and not keys:
        raise ValidationError(
            {"annotations": "There is nothing to export: no measurement with a value and no key image."}
        )
    if not annotation_set.sr_series_uid:
        annotation_set.sr_series_uid, annotation_set.ko_series_uid = generate_uid(), generate_uid()
        annotation_set.save(update_fields=["sr_series_uid", "ko_series_uid"])
    sender, messages = _sender(actor), []
    sr_uid = ko_uid = ""
    if measured:
        headers = _headers(study, {ref.sop_instance_uid for _, ref in measured})
        sr = sr_build(saved=saved, headers=headers, series_uid=annotation_set.sr_series_uid,
                      previous=_previous_sr(annotation_set, saved))  # fmt: skip
        messages.append(_store(sr, study, sender, batch))
        sr_uid = str(sr.SOPInstanceUID)
    if keys:
        headers = _headers(study, {ref.sop_instance_uid for ref in keys})
        ko = ko_build(saved=saved, headers=headers, series_uid=annotation_set.ko_series_uid)
        messages.append(_store(ko, study, sender, batch))
        ko_uid = str(ko.SOPInstanceUID)
    export_mark(saved=saved, sr_uid=sr_uid, ko_uid=ko_uid)
    audit_record(
        actor=actor, instance=annotation_set, action="export",
        changes={"version": [None, saved.number], "sr": [None, sr_uid or None], "key_objects": [None, ko_uid or None]},
    )  # fmt: skip
    return Export(
        saved.number, sr_uid, ko_uid, annotation_set.sr_series_uid, annotation_set.ko_series_uid, messages
    )
