"""Reconciliation: staff link a study to its animal, move it, or split a series off it; the
stored headers are then rewritten to agree with the record (the originals are kept).

The services check everything before they change anything and raise ValidationError with a
message meant for the person at the desk.
"""

import io
import logging

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.timezone import now
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from imaging.archive.dicomjson import part10_document
from imaging.archive.metadata import metadata_keep
from imaging.dicom.records.datasets import patient_attributes_apply, patient_name, species_agrees
from imaging.ingest import storage
from imaging.models import Instance, InstanceVersion, Series, Study
from patients.models import Patient
from patients.selectors import patient_resolve
from vetclinic.audit.services import Actor, audit_record

log = logging.getLogger(__name__)
REWRITE_TASK = "imaging.tasks.study_headers_rewrite_task"


def _living(patient: Patient) -> Patient:
    return patient_resolve(Patient.objects.select_related("species").get(pk=patient.pk))


def _species_check(study: Study, patient: Patient, species_override: bool) -> None:
    if species_override or species_agrees(study.dicom_species, patient):
        return
    raise ValidationError(
        f"The images say the animal is '{study.dicom_species}', but {patient.name} ({patient.patient_id}) "
        f"is a {patient.species}. Nothing was changed."
    )


def study_headers_rewrite_queue(study_id: int) -> None:
    """After the commit: rewrite the stored headers in the background."""

    def queue() -> None:
        try:
            # By name: tasks import services, never the reverse (STYLE.md).
            current_app.send_task(REWRITE_TASK, args=[study_id])
        except Exception:  # the link is committed; a broker outage must not turn it into an error page
            log.exception("could not queue the header rewrite of study %s", study_id)

    transaction.on_commit(queue)


@transaction.atomic
def study_link_manual(
    *, actor: Actor, study: Study, patient: Patient, species_override: bool = False
) -> Study:
    """Link a study to an animal by hand: an unmatched one from the queue, or one linked to the
    wrong animal (moving it between patients). Clears the study's flag."""
    study = Study.objects.select_for_update(of=("self",)).select_related("patient").get(pk=study.pk)
    patient = _living(patient)
    if study.patient_id == patient.pk and study.link != Study.Link.UNMATCHED and not study.flag:
        raise ValidationError(f"This study is already linked to {patient.name} ({patient.patient_id}).")
    _species_check(study, patient, species_override)
    old_patient, old_link, old_flag = study.patient, study.link, study.flag
    study.patient, study.link, study.flag = patient, Study.Link.MANUAL, ""
    study.updated = now()
    study.save(update_fields=["patient", "link", "flag", "updated"])
    changes: dict[str, list[str | None]] = {
        "patient": [str(old_patient) if old_patient else None, str(patient)]
    }
    if old_link != study.link:
        changes["link"] = [old_link, study.link]
    if old_flag:
        changes["flag"] = [old_flag, None]
    if species_override and not species_agrees(study.dicom_species, patient):
        changes["species"] = [study.dicom_species, f"{patient.species} (confirmed by staff)"]
    audit_record(actor=actor, instance=study, action="move" if old_patient else "link", changes=changes)
    study_headers_rewrite_queue(study.pk)
    return study


@transaction.atomic
def series_split(*, actor: Actor, series: Series, patient: Patient, species_override: bool = False) -> Study:
    """Split one series off its study into a new study (new Study Instance UID) of ``patient``:
    a modality that put two animals' images, or two examinations, under one study."""
    series = Series.objects.select_for_update().get(pk=series.pk)
    old = Study.objects.select_for_update().get(pk=series.study_id)
    patient = _living(patient)
    if old.series.count() < 2:
        raise ValidationError("This is the study's only series: move the whole study instead.")
    _species_check(old, patient, species_override)
    new = Study.objects.create(
        study_instance_uid=generate_uid(),
        patient=patient,
        link=Study.Link.MANUAL,
        accession_number=old.accession_number,
        study_date=old.study_date,
        study_time=old.study_time,
        description=old.description,
        referring_physician=old.referring_physician,
        # What the images said stays what they said.
        dicom_patient_id=old.dicom_patient_id,
        dicom_patient_name=old.dicom_patient_name,
        dicom_species=old.dicom_species,
        dicom_birth_date=old.dicom_birth_date,
        received_at=old.received_at,
    )
    series.study = new
    series.save(update_fields=["study"])
    old.updated = now()
    old.save(update_fields=["updated"])
    audit_record(
        actor=actor, instance=old, action="series_split",
        changes={"series": [str(series), f"study {new.study_instance_uid}"]},
    )  # fmt: skip
    audit_record(
        actor=actor, instance=new, action="split_from",
        changes={"study": [old.study_instance_uid, new.study_instance_uid], "patient": [None, str(patient)]},
    )  # fmt: skip
    study_headers_rewrite_queue(new.pk)
    return new


def _header_agrees(ds: Dataset, patient: Patient, study: Study) -> bool:
    return (
        str(ds.get("PatientID", "")) == patient.patient_id
        and str(ds.get("PatientName", "")) == patient_name(patient)
        and str(ds.get("StudyInstanceUID", "")) == study.study_instance_uid
        and str(ds.get("PatientSpeciesDescription", "")) == patient.species.meaning
    )


@transaction.atomic
def _instance_rewrite(*, instance_id: int) -> bool:
    """Rewrite one instance's header to agree with its study's patient; True if it did.

    One transaction per instance: a large study does not hold the database for the whole
    rewrite, and a failure leaves every instance either old or new, never in between.
    """
    instance = (
        Instance.objects.select_for_update(of=("self",))
        .select_related("series__study__patient__species")
        .filter(pk=instance_id)
        .first()
    )
    if instance is None:
        return False  # deleted since
    study = instance.series.study
    patient = study.patient
    if patient is None:
        return False  # unlinked since
    ds = dcmread(io.BytesIO(storage.object_get(instance.storage_key)))
    if _header_agrees(ds, patient, study):
        return False
    patient_attributes_apply(ds, patient, study_instance_uid=study.study_instance_uid)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)  # keeps the transfer syntax it was read with
    data = out.getvalue()
    key = storage.instance_key(instance.sop_instance_uid)
    storage.object_put(key, data)
    try:
        InstanceVersion.objects.create(
            instance=instance, version=instance.version, storage_key=instance.storage_key,
            file_size=instance.file_size, received_from=instance.received_from,
            received_at=instance.received_at, reason=InstanceVersion.Reason.REWRITTEN,
        )  # fmt: skip
        instance.version += 1
        instance.storage_key = key
        instance.file_size = len(data)
        instance.save(update_fields=["version", "storage_key", "file_size"])
        # WADO-RS /metadata says what is stored: the rewritten object, from the bytes in hand.
        metadata_keep(instance_id=instance.pk, storage_key=key, document=part10_document(data))
    except Exception:
        storage.object_delete(key)  # else the storage sweep would index it as a new version
        raise
    return True


def study_headers_rewrite(*, study_id: int, actor: Actor | None = None) -> int:
    """Make every stored object of the study carry its animal's attributes (and the study's
    UID, after a split). Each old object stays in storage as an InstanceVersion. Objects that
    already agree are skipped, so running it again changes nothing."""
    actor = actor or Actor.system("reconciliation")
    study = Study.objects.filter(pk=study_id).first()
    if study is None or study.patient_id is None:
        return 0
    ids = list(Instance.objects.filter(series__study_id=study_id).values_list("pk", flat=True))
    rewritten = sum(_instance_rewrite(instance_id=pk) for pk in ids)
    if rewritten:
        audit_record(
            actor=actor, instance=study, action="headers_rewrite",
            changes={"instances": [None, f"{rewritten} rewritten for {study.patient}"]},
        )  # fmt: skip
    return rewritten
