"""A study (or some of its series) as a ZIP for a USB stick or a CD, streamed as it is written.

The layout is IHE PDI's (IHE RAD TF-2 4.47, PS3.10 8 and PS3.12 Annex F): a DICOMDIR at the
root, built by pydicom's FileSet, naming each object by its File ID, up to 8 components of up to
8 characters from A-Z, 0-9 and _ (PS3.10 8.2, 8.5); the objects as they are stored, byte for
byte; beside them a PREVIEWS folder with a JPEG per series and a README.TXT (IHE PDI allows
other content outside the DICOM files, and README.TXT is the name it gives the readme).

Memory: the DICOMDIR is built from the headers alone (pixel data not read); each object is then
copied from storage a megabyte at a time into the ZIP, and what the ZIP writer has produced is
handed on at once (zipfile writes to an unseekable stream with data descriptors, ZIP64 as
needed), so a study of any size streams with a few megabytes in hand.
"""

import logging
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet

from imaging.archive.rendered import Picture, middle_frame, picture_render
from imaging.archive.rendering import JPEG, CannotRender, Rendering, Viewport
from imaging.archive.transcode import instance_path
from imaging.export.selection import NotExportable, study_instances
from imaging.ingest import storage
from imaging.models import Instance, Study
from vetclinic import clock
from vetclinic.audit.services import Actor, audit_record

log = logging.getLogger(__name__)
CHUNK = 1 << 20
PREVIEW_SIZE = 1024  # pixels a side at most: a look at the series, not for diagnosis
FILE_SET_ID = "VETPACS"  # File-set ID (0004,1130): CS, 16 characters at most


@dataclass(frozen=True)
class StudyZip:
    """What one ZIP export holds: checked and audited when it was asked for."""

    study: Study
    instances: list[Instance]
    series_uids: tuple[str, ...]
    dicomdir: (
        bytes  # built when the export was asked for: a missing object is an answer, not a broken download
    )
    file_ids: dict[str, str]  # SOP Instance UID -> its name in the ZIP
    others: dict[str, str]  # those with no DICOMDIR record type, under OTHER/

    @property
    def filename(self) -> str:
        # No patient data in a file name that ends up in the browser's history and downloads.
        return f"study-{self.study.pk}.zip"


def study_zip(*, actor: Actor, study: Study, series_uids: list[str] | None = None) -> StudyZip:
    """The export of ``study`` (or only ``series_uids``) with its DICOMDIR, audited. Raises
    NotStored (no such series, nothing stored), NotExportable (``instance``: an object is not in
    storage or cannot be read)."""
    instances = study_instances(study=study, series_uids=series_uids)
    dicomdir, file_ids, others = dicomdir_build(study, instances)
    audit_record(
        actor=actor, instance=study, action="exported",
        changes={"format": ["zip"], "series": list(series_uids or ["all"]), "instances": [len(instances)]},
    )  # fmt: skip
    return StudyZip(study, instances, tuple(series_uids or ()), dicomdir, file_ids, others)


class _Pipe:
    """An unseekable file for zipfile: what is written waits here until the stream takes it."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.pieces.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.pieces = b"".join(self.pieces), []
        return data


def zip_chunks(export: StudyZip) -> Iterator[bytes]:
    """The ZIP's bytes, in pieces of about a megabyte, as they are written."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr("DICOMDIR", export.dicomdir)
        yield pipe.take()
        for instance in export.instances:
            name = export.file_ids.get(instance.sop_instance_uid) or export.others[instance.sop_instance_uid]
            with (
                storage.default_storage.open(instance.storage_key, "rb") as source,
                archive.open(name, "w", force_zip64=instance.file_size >= 1 << 31) as target,
            ):
                while piece := source.read(CHUNK):
                    target.write(piece)
                    yield pipe.take()
        previews = []
        for number, (series, picture) in enumerate(_previews(export), start=1):
            name = f"PREVIEWS/SERIES{number:02d}.JPG"
            archive.writestr(name, picture, compress_type=zipfile.ZIP_STORED)
            previews.append((series, name))
            yield pipe.take()
        readme = readme_text(export, previews, export.others)
        archive.writestr("README.TXT", readme.encode(), compress_type=zipfile.ZIP_DEFLATED)
    yield pipe.take()


def dicomdir_build(study: Study, instances: list[Instance]) -> tuple[bytes, dict[str, str], dict[str, str]]:
    """The DICOMDIR, each object's File ID as a ZIP name, and the names of those a DICOMDIR has
    no record for (a SOP class pydicom's FileSet does not know) under OTHER/: still on the medium,
    not in the directory. FileSet writes the directory beside header-only copies in a temporary
    folder; only the DICOMDIR is kept. Raises NotExportable (``instance``)."""
    file_set = FileSet()
    file_set.ID = FILE_SET_ID
    others: dict[str, str] = {}
    for instance in instances:
        try:
            with instance_path(instance.storage_key) as path:
                header = dcmread(path, stop_before_pixels=True)  # the records need the header only
        except (
            Exception
        ) as error:  # OSError, InvalidDicomError, a truncated header: the readers' errors are many
            log.warning("export: %s unreadable", instance.storage_key, exc_info=True)
            raise NotExportable(
                "instance",
                f"The stored object of instance {instance.sop_instance_uid} cannot be read ({error}).",
            ) from error
        _record_keys_fill(header, study)
        try:
            file_set.add(header)
        except ValueError:  # no directory record type for the SOP class (PS3.3 F.5)
            log.info("%s has no DICOMDIR record type; put under OTHER/", instance.sop_instance_uid)
            others[instance.sop_instance_uid] = f"OTHER/OB{len(others) + 1:06d}"
    with tempfile.TemporaryDirectory(prefix="vetpacs-dicomdir-") as folder:
        file_set.write(folder)
        with open(os.path.join(folder, "DICOMDIR"), "rb") as written:
            dicomdir = written.read()
        file_ids = {str(item.SOPInstanceUID): item.FileID.replace(os.sep, "/") for item in file_set}
    return dicomdir, file_ids, others


def _record_keys_fill(header: Dataset, study: Study) -> None:
    """The type 1 keys a directory record must have (PS3.3 F.5.1 Patient ID, F.5.2 Study Date,
    Study Time) taken from the index when the object lacks them. Only the header read for the
    record changes; the object is copied as it is stored."""
    if not header.get("PatientID"):
        header.PatientID = (
            study.dicom_patient_id or (study.patient.patient_id if study.patient else "") or "UNKNOWN"
        )
    if not header.get("StudyDate") and study.study_date:
        header.StudyDate = study.study_date.strftime("%Y%m%d")
    if not header.get("StudyTime") and study.study_time:
        header.StudyTime = study.study_time.strftime("%H%M%S")


def _previews(export: StudyZip) -> Iterator[tuple[Instance, bytes]]:
    """Each series' middle image (as its thumbnail), as a JPEG of at most PREVIEW_SIZE a side."""
    by_series: dict[int, list[Instance]] = {}
    for instance in export.instances:
        if instance.rows is not None:
            by_series.setdefault(instance.series_id, []).append(instance)
    for images in by_series.values():
        middle = images[len(images) // 2]
        large = max(middle.rows or 0, middle.columns or 0) > PREVIEW_SIZE
        rendering = Rendering(viewport=Viewport(PREVIEW_SIZE, PREVIEW_SIZE) if large else None)
        picture = Picture(middle.storage_key, middle.sop_instance_uid, (middle_frame(middle),))
        try:
            yield middle, picture_render(picture, rendering, JPEG)
        except CannotRender:
            log.warning("no preview of series %s", middle.series_id, exc_info=True)


def readme_text(export: StudyZip, previews: list[tuple[Instance, str]], others: dict[str, str]) -> str:
    """README.TXT: who made it, whose images, what is on it and how to open it (CRLF lines, so
    that every text editor shows them)."""
    study, patient = export.study, export.study.patient
    preview_of = {instance.series_id: name for instance, name in previews}
    lines = [
        settings.CLINIC_NAME,
        *settings.CLINIC_ADDRESS.splitlines(),
        "",
        "DICOM images exported from VetPACS",
        "",
        f"Animal:  {patient.name if patient else study.dicom_patient_name or 'not linked to a record'}",
    ]
    if patient:
        lines.append(f"Species: {patient.species}" + (f", {patient.breed or patient.breed_text}" if (
            patient.breed or patient.breed_text) else ""))  # fmt: skip
        lines.append(f"Patient ID: {patient.patient_id}")
        owner = patient.primary_owner
        if owner:
            lines.append(f"Owner:   {owner}")
    lines += [
        f"Study:   {study.description or '(no description)'}",
        f"Date:    {study.study_date or 'unknown'}",
        f"Accession number: {study.accession_number or '-'}",
        f"Study Instance UID: {study.study_instance_uid}",
        f"Exported: {clock.localnow():%Y-%m-%d %H:%M}",
        "",
        "Series:",
    ]
    seen: dict[int, int] = {}
    for instance in export.instances:
        seen[instance.series_id] = seen.get(instance.series_id, 0) + 1
    for instance in {i.series_id: i for i in export.instances}.values():
        series = instance.series
        preview = preview_of.get(series.pk)
        lines.append(
            f"  {series.series_number if series.series_number is not None else '-'}  {series.modality}  "
            f"{series.description or '(no description)'}: {seen[series.pk]} object(s)"
            + (f", preview {preview}" if preview else "")
        )
    lines += [
        "",
        "How to open",
        "  The images are DICOM files, listed in the DICOMDIR file at the top of this disc or",
        "  stick. Open DICOMDIR (or the whole folder) with a DICOM viewer, for example Weasis,",
        "  Horos, OsiriX, RadiAnt or MicroDicom; most find it when given the drive.",
        "  PREVIEWS holds one JPEG picture per series for a quick look: not for diagnosis.",
    ]
    if others:
        lines.append(
            "  OTHER holds objects a DICOMDIR has no record type for; a DICOM viewer opens them one by one."
        )
    return "\r\n".join(lines) + "\r\n"
