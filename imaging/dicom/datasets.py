"""Record <-> data set mapping. The veterinary patient attributes are built here, in one place,
for the worklist, the ingest check and the reconciliation rewrite alike.

Attributes: PS3.3 C.7.1.1 Patient module and C.7.2.2 Patient Study module (animal patients).
"""
from datetime import datetime, time

from django.conf import settings
from django.utils.timezone import localtime
from pydicom.dataset import Dataset
from pydicom.uid import UID

from imaging.dicom.matching import SPS_STATUS
from patients.models import Patient

# Value representations whose text is subject to Specific Character Set (PS3.5 6.1.2.3).
TEXT_VRS = {"PN", "LO", "SH", "ST", "LT", "UT", "UC"}


def _text(ds, keyword, limit=64):
    value = ds.get(keyword)
    return str(value).strip()[:limit] if value not in (None, "") else ""


def _int(ds, keyword):
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def _date(value):
    try:
        return datetime.strptime(str(value).strip()[:8], "%Y%m%d").date() if value else None
    except ValueError:
        return None


def _time(value):
    text = str(value or "").strip().split(".")[0].replace(":", "")
    try:
        return time(int(text[0:2]), int(text[2:4] or 0), int(text[4:6] or 0)) if len(text) >= 2 else None
    except ValueError:
        return None


def species_text(ds):
    """The species the images name: description (0010,2201) or the code's meaning (0010,2202)."""
    if ds.get("PatientSpeciesDescription"):
        return str(ds.PatientSpeciesDescription).strip()
    sequence = ds.get("PatientSpeciesCodeSequence")
    if sequence:
        return str(sequence[0].get("CodeMeaning", "") or sequence[0].get("CodeValue", "")).strip()
    return ""


def header_summary(ds, *, transfer_syntax_uid):
    """What the index needs from one instance, as JSON-safe values (sent to the ingest task)."""
    return {
        "study_instance_uid": str(ds.StudyInstanceUID),
        "series_instance_uid": str(ds.SeriesInstanceUID),
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "sop_class_uid": str(ds.SOPClassUID),
        "transfer_syntax_uid": str(transfer_syntax_uid),
        "accession_number": _text(ds, "AccessionNumber", 16),
        "study_date": _text(ds, "StudyDate", 8),
        "study_time": _text(ds, "StudyTime", 16),
        "study_description": _text(ds, "StudyDescription"),
        "referring_physician": _text(ds, "ReferringPhysicianName"),
        "patient_id": _text(ds, "PatientID"),
        "patient_name": _text(ds, "PatientName"),
        "patient_birth_date": _text(ds, "PatientBirthDate", 8),
        "species": species_text(ds)[:64],
        "modality": _text(ds, "Modality", 16),
        "series_number": _int(ds, "SeriesNumber"),
        "series_description": _text(ds, "SeriesDescription"),
        "body_part": _text(ds, "BodyPartExamined"),
        "station_name": _text(ds, "StationName", 16),
        "instance_number": _int(ds, "InstanceNumber"),
        "rows": _int(ds, "Rows"),
        "columns": _int(ds, "Columns"),
        "number_of_frames": _int(ds, "NumberOfFrames") or 1,
    }


def summary_dates(summary):
    """The study's date and time as Python values (DA, TM: PS3.5 6.2)."""
    return _date(summary["study_date"]), _time(summary["study_time"])


def birth_date(summary):
    return _date(summary["patient_birth_date"])


def name_components(patient_name):
    """(family, given) of a DICOM PN: for animals, owner family name and animal name."""
    parts = str(patient_name or "").split("=")[0].split("^")
    if len(parts) == 1:
        return "", parts[0].strip()
    return parts[0].strip(), parts[1].strip()


def patient_name(patient):
    """``OwnerFamily^AnimalName`` (PS3.3 C.7.1.1.1.1 for animal patients)."""
    return patient.dicom_name


def _code_item(value, scheme, meaning):
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning[:64]
    return item


def patient_attributes(patient: Patient) -> Dataset:
    """The animal's patient attributes as a data set, ready to merge into another."""
    ds = Dataset()
    ds.PatientName = patient_name(patient)
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date.strftime("%Y%m%d") if patient.birth_date else ""
    ds.PatientSex = patient.sex
    ds.PatientSpeciesDescription = patient.species.meaning
    ds.PatientSpeciesCodeSequence = [_code_item(patient.species.code, patient.species.scheme, patient.species.meaning)]
    # Breed: the code when there is one, else the free-text description (2C rules, PS3.3 C.7.1.1).
    if patient.breed_id:
        ds.PatientBreedDescription = ""
        ds.PatientBreedCodeSequence = [_code_item(patient.breed.code, patient.breed.scheme, patient.breed.meaning)]
    else:
        ds.PatientBreedDescription = patient.breed_text[:64]
        ds.PatientBreedCodeSequence = []
    ds.BreedRegistrationSequence = []
    ds.PatientSexNeutered = patient.neutered
    owner = patient.primary_owner
    if owner and owner.kind == owner.Kind.ORGANISATION:
        ds.ResponsiblePerson = ""
        ds.ResponsibleOrganization = owner.organisation_name[:64]
    else:
        ds.ResponsiblePerson = f"{owner.family_name}^{owner.given_name}" if owner else ""
        ds.ResponsibleOrganization = ""
    if ds.ResponsiblePerson:
        ds.ResponsiblePersonRole = "OWNER"  # 1C when Responsible Person has a value
    weight = patient.current_weight
    if weight is not None:
        ds.PatientWeight = format(weight.normalize(), "f")[:16]
    if patient.microchip:
        chip = Dataset()
        chip.PatientID = patient.microchip
        chip.TypeOfPatientID = "RFID"
        ds.OtherPatientIDsSequence = [chip]
    return ds


def patient_attributes_apply(ds, patient, *, study_instance_uid=None):
    """Make ``ds`` agree with the record (and, when splitting a series off, its new study)."""
    for element in patient_attributes(patient):
        ds[element.tag] = element
    if study_instance_uid:
        ds.StudyInstanceUID = UID(study_instance_uid)
    return ds


def species_agrees(species_in_images, patient):
    """A species named in the images must be the record's (by meaning, name or code)."""
    if not species_in_images:
        return True  # nothing said, nothing contradicted
    said = species_in_images.strip().lower()
    known = {patient.species.meaning.lower(), patient.species.name.lower(), patient.species.code.lower()}
    return said in known


def animal_name_agrees(dicom_patient_name, patient):
    _, given = name_components(dicom_patient_name)
    return given.strip().lower() == patient.name.strip().lower()


def _da(moment):
    return moment.strftime("%Y%m%d")


def _tm(moment):
    return moment.strftime("%H%M%S")


def worklist_item(order) -> Dataset:
    """The whole Modality Worklist item for an order (PS3.4 K.6-1): every Type 1 and 2 return
    key, and the animal's veterinary attributes. ``worklist_response`` picks what a query asked."""
    patient, procedure, station = order.patient, order.procedure, order.station
    start, end = localtime(order.scheduled_start), localtime(order.scheduled_end)
    ds = patient_attributes(patient)
    ds.IssuerOfPatientID = settings.CLINIC_NAME[:64]
    if order.weight_kg is not None:  # the weight on the day, where the desk recorded one
        ds.PatientWeight = format(order.weight_kg.normalize(), "f")[:16]
    elif "PatientWeight" not in ds:
        ds.PatientWeight = None
    for keyword in ("MedicalAlerts", "Allergies", "PregnancyStatus", "SpecialNeeds", "PatientState",
                    "ConfidentialityConstraintOnPatientDataDescription", "CurrentPatientLocation",
                    "PatientTransportArrangements"):  # fmt: skip
        ds.setdefault(keyword, None)
    ds.AdmissionID = str(order.visit_id or "")
    ds.AccessionNumber = order.accession_number
    ds.ReferringPhysicianName = order.referring_vet
    ds.RequestingPhysician = order.referring_vet
    ds.StudyInstanceUID = UID(order.study_instance_uid)
    ds.ReferencedStudySequence = []
    ds.RequestedProcedureID = order.requested_procedure_id
    ds.RequestedProcedureDescription = procedure.name[:64]
    ds.RequestedProcedureCodeSequence = [_code_item(procedure.code, procedure.protocol_scheme, procedure.name)]
    ds.RequestedProcedurePriority = order.priority
    ds.ReasonForTheRequestedProcedure = order.reason[:64]
    ds.NamesOfIntendedRecipientsOfResults = order.referring_vet

    step = Dataset()
    step.ScheduledStationAETitle = station.ae_title if station else ""
    step.ScheduledStationName = station.station_name if station else ""
    step.ScheduledProcedureStepLocation = station.location[:16] if station else ""
    step.ScheduledProcedureStepStartDate = _da(start)
    step.ScheduledProcedureStepStartTime = _tm(start)
    step.ScheduledProcedureStepEndDate = _da(end)
    step.ScheduledProcedureStepEndTime = _tm(end)
    step.Modality = order.modality_type
    step.ScheduledPerformingPhysicianName = order.performing_vet
    step.ScheduledProcedureStepDescription = procedure.name[:64]
    step.ScheduledProtocolCodeSequence = [_code_item(procedure.protocol_code, procedure.protocol_scheme, procedure.name)]
    step.ScheduledProcedureStepID = order.scheduled_step_id
    step.ScheduledProcedureStepStatus = SPS_STATUS[order.status]
    step.CommentsOnTheScheduledProcedureStep = order.reason[:10240]
    step.PreMedication = None
    step.RequestedContrastAgent = None
    ds.ScheduledProcedureStepSequence = [step]
    if procedure.body_part:
        ds.BodyPartExamined = procedure.body_part  # not in K.6-1; some modalities ask for it
    return ds


def worklist_response(identifier, item):
    """The C-FIND response identifier: exactly the keys the query named (C.4.1.1.3.2), with
    our values, or empty where we have none. A key given as an empty sequence gets the whole
    sequence; a sequence key with an item gets the keys of that item (C.2.2.2.6)."""
    response = Dataset()
    for element in identifier:
        if element.tag.group in (0x0000, 0x0002) or element.keyword in ("SpecificCharacterSet", "QueryRetrieveLevel"):
            continue
        ours = item.get(element.tag)
        if ours is None:
            response.add_new(element.tag, element.VR, [] if element.VR == "SQ" else None)
        elif element.VR == "SQ" and element.value and len(element.value) and ours.VR == "SQ":
            response.add_new(
                element.tag, "SQ", [worklist_response(element.value[0], sub) for sub in ours.value]
            )
        else:
            response[element.tag] = ours
    if any(e.VR in TEXT_VRS and not str(e.value or "").isascii() for e in response.iterall()):
        response.SpecificCharacterSet = "ISO_IR 192"  # UTF-8 (PS3.3 C.12.1.1.2)
    return response
