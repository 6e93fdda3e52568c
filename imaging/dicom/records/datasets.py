"""Record <-> data set mapping. The veterinary patient attributes are built here, in one place,
for the worklist, the ingest check and the reconciliation rewrite alike. (What the
index reads from a received header is header.py.)

Attributes: PS3.3 C.7.1.1 Patient module and C.7.2.2 Patient Study module (animal patients).
"""

import struct
from collections.abc import Iterable, MutableMapping
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from io import BytesIO
from typing import Any

from django.conf import settings
from django.utils.timezone import localtime
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pynetdicom.dsutils import decode, encode

from imaging.dicom.records.encoding import element_encode
from imaging.dicom.records.matching import SPS_STATUS
from imaging.models import ImagingOrder
from patients import names
from patients.models import Owner, Patient

# A row of columns by their lookup paths (PATIENT_COLUMNS, WORKLIST_COLUMNS below), as a
# values() query or ``patient_row`` gives it; Any: each column holds its own field's type.
Row = dict[str, Any]
# A return key of a query: (tag, VR, the return keys of its item for a sequence key, or None).
ResponseKey = tuple[int, str, "list[ResponseKey] | None"]

# Value representations whose text is subject to Specific Character Set (PS3.5 6.1.2.3).
TEXT_VRS = {"PN", "LO", "SH", "ST", "LT", "UT", "UC"}
SPECIFIC_CHARACTER_SET = 0x00080005
QUERY_RETRIEVE_LEVEL = 0x00080052
ITEM = struct.Struct("<HHI")  # (FFFE,E000) and its length (PS3.5 7.5.1)
BINARY_NUMBERS = {"US": "<H", "SS": "<h", "UL": "<I", "SL": "<i"}  # held as int, not text


@cache
def _tag_vr(keyword: str) -> tuple[int, str]:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"{keyword} is not a DICOM keyword")
    return tag, dictionary_VR(tag)


# tag -> (VR, value). Any: the VR says what the value is (a str or None; a list of Elements for SQ).
class Elements(dict[int, tuple[str, Any]]):
    """A data set as plain values, cheap to build: tag -> (VR, value), the value a str, None
    (zero length) or, for a sequence, a list of Elements. The records' attributes are defined
    once, in this form; ``dataset()`` makes the pydicom Dataset that the ingest check and the
    reconciliation rewrite use, ``encode()`` the bytes a worklist answer carries."""

    def put(self, keyword: str, value: Any) -> None:
        tag, vr = _tag_vr(keyword)
        self[tag] = (vr, value)

    def dataset(self) -> Dataset:
        ds = Dataset()
        for tag, (vr, value) in self.items():
            ds.add_new(tag, vr, [item.dataset() for item in value] if vr == "SQ" else value)
        return ds

    def encode(self, *, implicit_vr: bool) -> bytes:
        """Little endian, defined lengths throughout (PS3.5 7.1.2, 7.1.3, 7.5). Text is UTF-8,
        which is ASCII unless the elements say ISO_IR 192 (see ``worklist_answer``)."""
        out: list[bytes] = []
        for tag in sorted(self):
            vr, value = self[tag]
            if vr == "SQ":
                data = b"".join(ITEM.pack(0xFFFE, 0xE000, len(body)) + body
                                for body in (item.encode(implicit_vr=implicit_vr) for item in value))  # fmt: skip
            elif vr in BINARY_NUMBERS:  # a number (Rows, Columns ...), little endian
                data = b"" if value is None else struct.pack(BINARY_NUMBERS[vr], value)
            else:
                data = value.encode() if value else b""
            out.append(element_encode(tag, vr, data, implicit_vr=implicit_vr))
        return b"".join(out)

    def non_ascii(self) -> bool:
        """Any text that needs a character set beyond the default repertoire."""
        for vr, value in self.values():
            if vr == "SQ":
                if any(item.non_ascii() for item in value):
                    return True
            elif value and vr in TEXT_VRS and not value.isascii():
                return True
        return False


def name_components(patient_name: object) -> tuple[str, str]:
    """(family, given) of a DICOM PN: for animals, owner family name and animal name."""
    parts = str(patient_name or "").split("=")[0].split("^")
    if len(parts) == 1:
        return "", parts[0].strip()
    return parts[0].strip(), parts[1].strip()


def patient_name(patient: Patient) -> str:
    """``OwnerFamily^AnimalName`` (PS3.3 C.7.1.1.1.1 for animal patients)."""
    return patient.dicom_name


def _code_item(value: str, scheme: str, meaning: str) -> Elements:
    item = Elements()
    item.put("CodeValue", value)
    item.put("CodingSchemeDesignator", scheme)
    item.put("CodeMeaning", meaning[:64])
    return item


# What the patient attributes are made of: the animal's columns and its species' and breed's
# (Django lookup paths from Patient), and its primary owner's. A row holds them under their
# lookup paths from an order, the animal's behind "patient__", the owner's behind OWNER (the
# primary ownership orders.worklist.worklist_items joins): read in one query by
# orders.worklist.worklist_rows, or made from the records by ``patient_row``.
PATIENT_COLUMNS = (
    "name", "patient_id", "birth_date", "sex", "neutered", "microchip", "breed_text", "breed_id",
    "species__code", "species__scheme", "species__meaning", "breed__code", "breed__scheme", "breed__meaning",
    "breed__name",
)  # fmt: skip
OWNER = "primary_ownership__owner__"
OWNER_COLUMNS = ("kind", "family_name", "given_name", "organisation_name")


def _follow(record: Any, path: str) -> Any:
    for name in path.split("__"):
        record = getattr(record, name) if record is not None else None
    return record


def patient_row(patient: Patient) -> Row:
    """The animal's row, made from its records (Patient.primary_owner: a query)."""
    row = {"patient__" + path: _follow(patient, path) for path in PATIENT_COLUMNS}
    owner = patient.primary_owner
    row.update({OWNER + column: getattr(owner, column) if owner else None for column in OWNER_COLUMNS})
    return row


def patient_elements(row: Row, *, weight: Decimal | None) -> Elements:
    """The animal's patient attributes, from its row (``patient_row``), with a weight (or None)."""
    ds = Elements()
    kind = row[OWNER + "kind"]
    family = Owner.dicom_family_name_of(kind, row[OWNER + "family_name"], row[OWNER + "organisation_name"])
    ds.put("PatientName", names.patient_name(family, row["patient__name"]))
    ds.put("PatientID", row["patient__patient_id"])
    birth = row["patient__birth_date"]
    ds.put("PatientBirthDate", birth.strftime("%Y%m%d") if birth else "")
    ds.put("PatientSex", row["patient__sex"])
    meaning = row["patient__species__meaning"]
    ds.put("PatientSpeciesDescription", meaning)
    ds.put(
        "PatientSpeciesCodeSequence",
        [_code_item(row["patient__species__code"], row["patient__species__scheme"], meaning)],
    )
    # Breed: the code and its name, else the free text. Patient Breed Description is 2C:
    # required when the code sequence is empty, "may be present otherwise" (PS3.3 C.7.1.1);
    # modalities show and burn in the description, not the code, so it is always filled.
    if row["patient__breed_id"]:
        ds.put("PatientBreedDescription", row["patient__breed__name"][:64])
        ds.put("PatientBreedCodeSequence", [_code_item(row["patient__breed__code"], row["patient__breed__scheme"],
                                                       row["patient__breed__meaning"])])  # fmt: skip
    else:
        ds.put("PatientBreedDescription", row["patient__breed_text"][:64])
        ds.put("PatientBreedCodeSequence", [])
    ds.put("BreedRegistrationSequence", [])
    ds.put("PatientSexNeutered", row["patient__neutered"])
    person = ""
    if kind == Owner.Kind.ORGANISATION:
        ds.put("ResponsibleOrganization", row[OWNER + "organisation_name"][:64])
    else:
        person = names.person_name(row[OWNER + "family_name"], row[OWNER + "given_name"]) if kind else ""
        ds.put("ResponsibleOrganization", "")
    ds.put("ResponsiblePerson", person)
    if person:
        ds.put("ResponsiblePersonRole", "OWNER")  # 1C when Responsible Person has a value
    if weight is not None:
        ds.put("PatientWeight", format(weight.normalize(), "f")[:16])
    if row["patient__microchip"]:
        chip = Elements()
        chip.put("PatientID", row["patient__microchip"])
        chip.put("TypeOfPatientID", "RFID")
        ds.put("OtherPatientIDsSequence", [chip])
    return ds


def patient_attributes(patient: Patient) -> Dataset:
    """The animal's patient attributes as a data set, ready to merge into another."""
    return patient_elements(patient_row(patient), weight=patient.current_weight).dataset()


def patient_attributes_apply(
    ds: Dataset, patient: Patient, *, study_instance_uid: str | None = None
) -> Dataset:
    """Make ``ds`` agree with the record (and, when splitting a series off, its new study)."""
    for element in patient_attributes(patient):
        ds[element.tag] = element
    if study_instance_uid:
        ds.StudyInstanceUID = UID(study_instance_uid)
    return ds


def species_agrees(species_in_images: str, patient: Patient) -> bool:
    """A species named in the images must be the record's (by meaning, name or code)."""
    if not species_in_images:
        return True  # nothing said, nothing contradicted
    said = species_in_images.strip().lower()
    known = {patient.species.meaning.lower(), patient.species.name.lower(), patient.species.code.lower()}
    return said in known


def animal_name_agrees(dicom_patient_name: object, patient: Patient) -> bool:
    _, given = name_components(dicom_patient_name)
    return given.lower() == names.given_component(patient.name).lower()  # as our worklist wrote it


def _da(moment: datetime) -> str:
    return moment.strftime("%Y%m%d")


def _tm(moment: datetime) -> str:
    return moment.strftime("%H%M%S")


# What a worklist item is made of besides its animal's row: the order's columns and its
# procedure's and station's. orders.worklist.worklist_rows reads exactly these (and the patient's, the
# owner's and the last weight), as plain rows in one query; ``order_row`` makes the same row.
ORDER_COLUMNS = (
    "scheduled_start", "duration_minutes", "weight_kg", "visit_id", "accession_number", "referring_vet",
    "study_instance_uid", "requested_procedure_id", "priority", "reason", "modality_type", "performing_vet",
    "scheduled_step_id", "status", "procedure__name", "procedure__code", "procedure__protocol_code",
    "procedure__protocol_scheme", "procedure__body_part", "station__ae_title", "station__station_name",
    "station__location",
)  # fmt: skip
# A worklist row: all of them, and the animal's last weight (an annotation).
WORKLIST_COLUMNS = (*ORDER_COLUMNS, *("patient__" + path for path in PATIENT_COLUMNS),
                    *(OWNER + column for column in OWNER_COLUMNS), "last_weight")  # fmt: skip


def order_row(order: ImagingOrder) -> Row:
    """The row orders.worklist.worklist_rows reads, made from an order and its records."""
    row = {path: _follow(order, path) for path in ORDER_COLUMNS}
    row.update(patient_row(order.patient))
    row["last_weight"] = order.patient.current_weight if order.weight_kg is None else None
    return row


def worklist_elements(row: Row) -> Elements:
    """The whole Modality Worklist item for an order's row (PS3.4 K.6-1): every Type 1 and 2
    return key, and the animal's veterinary attributes. ``worklist_answer`` picks what a query
    asked."""
    start = localtime(row["scheduled_start"])
    end = localtime(row["scheduled_start"] + timedelta(minutes=row["duration_minutes"]))
    # The weight on the day, where the desk recorded one; else the animal's last.
    weight = row["weight_kg"] if row["weight_kg"] is not None else row["last_weight"]
    ds = patient_elements(row, weight=weight)
    ds.put("IssuerOfPatientID", settings.CLINIC_NAME[:64])
    if weight is None:
        ds.put("PatientWeight", None)
    for keyword in ("MedicalAlerts", "Allergies", "PregnancyStatus", "SpecialNeeds", "PatientState",
                    "ConfidentialityConstraintOnPatientDataDescription", "CurrentPatientLocation",
                    "PatientTransportArrangements"):  # fmt: skip
        ds.put(keyword, None)
    ds.put("AdmissionID", str(row["visit_id"] or ""))
    ds.put("AccessionNumber", row["accession_number"])
    ds.put("ReferringPhysicianName", row["referring_vet"])
    ds.put("RequestingPhysician", row["referring_vet"])
    ds.put("StudyInstanceUID", row["study_instance_uid"])
    ds.put("ReferencedStudySequence", [])
    ds.put("RequestedProcedureID", row["requested_procedure_id"])
    ds.put("RequestedProcedureDescription", row["procedure__name"][:64])
    ds.put(
        "RequestedProcedureCodeSequence",
        [_code_item(row["procedure__code"], row["procedure__protocol_scheme"], row["procedure__name"])],
    )
    ds.put("RequestedProcedurePriority", row["priority"])
    ds.put("ReasonForTheRequestedProcedure", row["reason"][:64])
    ds.put("NamesOfIntendedRecipientsOfResults", row["referring_vet"])

    step = Elements()
    step.put("ScheduledStationAETitle", row["station__ae_title"] or "")
    step.put("ScheduledStationName", row["station__station_name"] or "")
    step.put("ScheduledProcedureStepLocation", (row["station__location"] or "")[:16])
    step.put("ScheduledProcedureStepStartDate", _da(start))
    step.put("ScheduledProcedureStepStartTime", _tm(start))
    step.put("ScheduledProcedureStepEndDate", _da(end))
    step.put("ScheduledProcedureStepEndTime", _tm(end))
    step.put("Modality", row["modality_type"])
    step.put("ScheduledPerformingPhysicianName", row["performing_vet"])
    step.put("ScheduledProcedureStepDescription", row["procedure__name"][:64])
    step.put(
        "ScheduledProtocolCodeSequence",
        [
            _code_item(
                row["procedure__protocol_code"], row["procedure__protocol_scheme"], row["procedure__name"]
            )
        ],
    )
    step.put("ScheduledProcedureStepID", row["scheduled_step_id"])
    step.put("ScheduledProcedureStepStatus", SPS_STATUS[row["status"]])
    step.put("CommentsOnTheScheduledProcedureStep", row["reason"][:10240])
    step.put("PreMedication", None)
    step.put("RequestedContrastAgent", None)
    ds.put("ScheduledProcedureStepSequence", [step])
    if row["procedure__body_part"]:
        ds.put("BodyPartExamined", row["procedure__body_part"])  # not in K.6-1; some modalities ask for it
    return ds


def worklist_item(order: ImagingOrder) -> Dataset:
    """The whole worklist item as a pydicom data set."""
    return worklist_elements(order_row(order)).dataset()


def response_keys(identifier: Iterable[Any]) -> list[ResponseKey]:
    """The return keys of a C-FIND identifier, once per query: (tag, VR, the keys of its item)
    for each, the last None unless a sequence key has an item with keys. Command, meta and query
    control attributes are no return keys. A sequence key with no item, or with one item with
    no keys (a zero-length item), asks for the whole sequence (PS3.4 C.2.2.2.6: universal
    matching of a sequence)."""
    keys: list[ResponseKey] = []
    for element in identifier:
        if element.tag.group in (0x0000, 0x0002) or element.tag in (
            SPECIFIC_CHARACTER_SET,
            QUERY_RETRIEVE_LEVEL,
        ):
            continue
        item_keys = response_keys(element.value[0]) if element.VR == "SQ" and element.value else None
        keys.append((int(element.tag), element.VR, item_keys or None))
    return keys


def picked(keys: list[ResponseKey], item: Elements) -> Elements:
    """Exactly the keys the query named (C.4.1.1.3.2), with our values, or empty where we have
    none. A key given as an empty sequence gets the whole sequence; a sequence key with an item
    gets the keys of that item in each of ours (C.2.2.2.6)."""
    answer = Elements()
    for tag, vr, item_keys in keys:
        ours = item.get(tag)
        if ours is None:
            answer[tag] = (vr, [] if vr == "SQ" else None)
        elif item_keys is not None and ours[0] == "SQ":
            answer[tag] = ("SQ", [picked(item_keys, sub) for sub in ours[1]])
        else:
            answer[tag] = ours
    return answer


def answer_elements(keys: list[ResponseKey], item: Elements) -> Elements:
    answer = picked(keys, item)
    if answer.non_ascii():
        answer[SPECIFIC_CHARACTER_SET] = ("CS", "ISO_IR 192")  # UTF-8 (PS3.3 C.12.1.1.2)
    return answer


def worklist_answer(keys: list[ResponseKey], row: Row, transfer_syntax: str) -> bytes | None:
    """The C-FIND response identifier for an order's ``row``, encoded in the presentation context's
    transfer syntax: directly for the little endian ones modalities use, by pydicom otherwise
    (None when pydicom cannot encode it: pynetdicom.dsutils.encode says so with None)."""
    answer = answer_elements(keys, worklist_elements(row))
    syntax = UID(transfer_syntax)
    if syntax.is_little_endian and not syntax.is_deflated:
        return answer.encode(implicit_vr=syntax.is_implicit_VR)
    return encode(answer.dataset(), syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)


def worklist_response(identifier: Dataset, order: ImagingOrder) -> Dataset:
    """The same answer as a pydicom data set."""
    return answer_elements(response_keys(identifier), worklist_elements(order_row(order))).dataset()


class EncodedDataset(Dataset):
    """A data set kept as its encoding in ``transfer_syntax`` (``encoded``): whoever sends it in
    that transfer syntax may send those bytes as they are instead of encoding it again. It is
    decoded the first time anything reads its elements (pydicom keeps them in ``_dict``), so a
    sender that only wants the bytes never pays for the decode: with about a dozen answers to a
    worklist query, that decode was a millisecond a query."""

    def __init__(self, encoded: bytes, transfer_syntax: UID) -> None:
        super().__init__()
        self.encoded, self.transfer_syntax = encoded, transfer_syntax
        self._undecoded = True

    @property
    def _dict(self) -> MutableMapping[BaseTag, Any]:
        state = self.__dict__
        if state.pop("_undecoded", False):
            syntax = state["transfer_syntax"]
            decoded = decode(
                BytesIO(state["encoded"]), syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated
            )
            state["_elements"] = decoded._dict
        return state["_elements"]  # type: ignore[no-any-return]

    @_dict.setter
    def _dict(self, elements: MutableMapping[BaseTag, Any]) -> None:
        self.__dict__["_elements"] = elements


def worklist_answer_dataset(keys: list[ResponseKey], row: Row, transfer_syntax: str) -> EncodedDataset | None:
    """worklist_answer as a data set, for a C-FIND SCP that takes a pydicom data set (None
    when it cannot be encoded in ``transfer_syntax``)."""
    encoded = worklist_answer(keys, row, transfer_syntax)
    return None if encoded is None else EncodedDataset(encoded, UID(transfer_syntax))
