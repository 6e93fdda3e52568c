"""Which animal (and order) a newly received study belongs to.

``LINKERS`` are tried in order; the first that answers wins. The order linkers (accession
number, then Study Instance UID -> ImagingOrder) go in front of the patient-ID one when orders
exist; a study none of them places waits in the reconciliation queue.
"""
from django.utils.timezone import now

from imaging.dicom.datasets import animal_name_agrees, species_agrees
from imaging.models import Study
from patients.models import Patient
from patients.selectors import patient_resolve
from vetclinic.audit.services import audit_record


def link_by_patient_id(study):
    """Patient ID -> Patient, accepted only when the animal's name and species agree.

    Returns (patient, how, flag): a patient to link to, or a flag saying why not.
    """
    if not study.dicom_patient_id:
        return None
    patient = Patient.objects.select_related("species").filter(patient_id=study.dicom_patient_id).first()
    if patient is None:
        return None
    patient = patient_resolve(patient)
    if not animal_name_agrees(study.dicom_patient_name, patient):
        return None, None, f"Patient ID {study.dicom_patient_id} is {patient.name}, but the images name '{study.dicom_patient_name}'"
    if not species_agrees(study.dicom_species, patient):
        return None, None, f"Patient ID {study.dicom_patient_id} is a {patient.species}, but the images say '{study.dicom_species}'"
    return patient, Study.Link.PATIENT_ID, ""


LINKERS = [link_by_patient_id]


def study_link(*, study, actor):
    """Run the linkers over a new study and record what they decided."""
    for linker in LINKERS:
        answer = linker(study)
        if answer is None:
            continue
        patient, how, flag = answer
        if patient is None:
            study.flag = flag[:200]
            break
        study.patient, study.link, study.flag = patient, how, ""
        break
    study.updated = now()
    study.save(update_fields=["patient", "link", "flag", "updated"])
    if study.patient_id:
        audit_record(actor=actor, instance=study, action="link", changes={"patient": [None, str(study.patient)]})
    else:
        audit_record(actor=actor, instance=study, action="unmatched", changes={"flag": [None, study.flag]})
