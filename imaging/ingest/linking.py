"""Which animal (and order) a newly received study belongs to.

``LINKERS`` are tried in order; the first that answers wins: accession number -> order, Study
Instance UID -> order (the UID we gave the modality in the worklist), Patient ID -> animal
(only when name and species agree). A study none of them places waits in the reconciliation
queue.
"""

from collections.abc import Callable
from typing import NamedTuple

from django.utils.timezone import now

from imaging.dicom.records.datasets import animal_name_agrees, patient_name, species_agrees
from imaging.models import ImagingOrder, Study
from imaging.orders.services import order_images_received
from imaging.reconcile.services import study_headers_rewrite_queue
from patients.models import Patient
from patients.selectors import patient_resolve
from vetclinic.audit.services import Actor, audit_record


class Link(NamedTuple):
    """A linker's answer: the animal (and order) to link to, or None and why not."""

    patient: Patient | None
    how: str = ""
    flag: str = ""
    order: ImagingOrder | None = None


def _by_order(order: ImagingOrder) -> Link:
    patient = patient_resolve(Patient.objects.select_related("species").get(pk=order.patient_id))
    return Link(patient, Study.Link.ORDER, "", order)


def link_by_accession_number(study: Study) -> Link | None:
    """Accession Number -> the order it was issued for (it came from our worklist)."""
    if not study.accession_number:
        return None
    order = ImagingOrder.objects.filter(accession_number=study.accession_number).first()
    return _by_order(order) if order else None


def link_by_study_instance_uid(study: Study) -> Link | None:
    """Study Instance UID -> the order whose UID the modality used (some drop the accession)."""
    order = ImagingOrder.objects.filter(study_instance_uid=study.study_instance_uid).first()
    return _by_order(order) if order else None


def link_by_patient_id(study: Study) -> Link | None:
    """Patient ID -> Patient, accepted only when the animal's name and species agree."""
    if not study.dicom_patient_id:
        return None
    patient = Patient.objects.select_related("species").filter(patient_id=study.dicom_patient_id).first()
    if patient is None:
        return None
    patient = patient_resolve(patient)
    if not animal_name_agrees(study.dicom_patient_name, patient):
        return Link(
            None,
            flag=f"Patient ID {study.dicom_patient_id} is {patient.name}, but the images name '{study.dicom_patient_name}'",
        )
    if not species_agrees(study.dicom_species, patient):
        return Link(
            None,
            flag=f"Patient ID {study.dicom_patient_id} is a {patient.species}, but the images say '{study.dicom_species}'",
        )
    return Link(patient, Study.Link.PATIENT_ID)


LINKERS: list[Callable[[Study], Link | None]] = [
    link_by_accession_number,
    link_by_study_instance_uid,
    link_by_patient_id,
]


def study_link(*, study: Study, actor: Actor) -> None:
    """Run the linkers over a new study and record what they decided."""
    for linker in LINKERS:
        answer = linker(study)
        if answer is None:
            continue
        if answer.patient is None:
            study.flag = answer.flag[:200]
        else:
            study.patient, study.link, study.flag, study.order = answer.patient, answer.how, "", answer.order
        break
    study.updated = now()
    study.save(update_fields=["patient", "link", "flag", "order", "updated"])
    # Both are the linker's answer, set above (or no link: None, without a query).
    patient = study.patient
    if patient is None:
        audit_record(actor=actor, instance=study, action="unmatched", changes={"flag": [None, study.flag]})
        return
    changes = {"patient": [None, str(patient)]}
    order = study.order
    if order is not None:
        changes["order"] = [None, order.accession_number]
        order_images_received(actor=actor, order=order)
        if not _images_agree(study, patient):
            # Typed at the modality instead of taken from the worklist: make the stored
            # headers say what the record says (the originals are kept as versions).
            study_headers_rewrite_queue(study.pk)
    audit_record(actor=actor, instance=study, action="link", changes=changes)


def _images_agree(study: Study, patient: Patient) -> bool:
    return (
        study.dicom_patient_id == patient.patient_id
        and study.dicom_patient_name.upper() == patient_name(patient).upper()
    )
