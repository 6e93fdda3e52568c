"""Reading an upload request (the page's XHR and the REST API's multipart/form-data): its
size checked before a byte is read, each file laid out at the path it had in the sender's
folder (a DICOMDIR finds its files by those paths), then upload_receive."""

import io
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest

from imaging.ingest.index import Sender
from imaging.models import ImagingOrder
from importing import sources
from importing.models import Upload
from importing.services import upload_receive
from patients.models import Patient
from vetclinic.audit.services import Actor


class UploadProblem(Exception):
    """A request that cannot be an upload: its HTTP status, the field at fault, a sentence."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def size_check(request: HttpRequest) -> None:
    """A body declared over IMPORT_MAX_BYTES is a 413 before anything reads it."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    most = settings.IMPORT_MAX_BYTES
    if declared > most:
        raise UploadProblem(413, "files", f"The upload is over the {most // 1024**2:,} MB one upload may be.")


def _target(data: "dict[str, str]") -> tuple[Patient | None, ImagingOrder | None]:
    patient = order = None
    for field in ("patient", "order"):
        value = (data.get(field) or "").strip()
        if not value:
            continue
        if not value.isdigit() or len(value) > 18:
            raise UploadProblem(400, field, f"{field} must be the {field}'s id.")
        if field == "patient":
            patient = Patient.objects.filter(pk=int(value), merged_into__isnull=True).first()
            if patient is None:
                raise UploadProblem(400, field, "No such patient.")
        else:
            order = ImagingOrder.objects.select_related("patient").filter(pk=int(value)).first()
            if order is None:
                raise UploadProblem(400, field, "No such order.")
    if patient is not None and order is not None and order.patient_id != patient.pk:
        raise UploadProblem(400, "order", "That order is for another patient.")
    return patient, order


def upload_from_request(
    files: "list[UploadedFile]", paths: "list[str]", data: "dict[str, str]", *, actor: Actor, sender: Sender
) -> Upload:
    """Receive the files of one request: ``paths`` (optional, one per file, in the same order)
    are their paths in a dropped folder; ``data`` may name a patient or order to link to."""
    if not files:
        raise UploadProblem(400, "files", "Send at least one file (the field 'files').")
    if paths and len(paths) != len(files):
        raise UploadProblem(400, "paths", "Give one path per file, or none.")
    patient, order = _target(data)
    with tempfile.TemporaryDirectory(prefix="vetpacs-upload-") as folder:
        root = Path(folder)
        size = 0
        for index, upload in enumerate(files):
            name = (paths[index] if paths else "") or upload.name or f"file-{index + 1}"
            temporary = getattr(upload, "temporary_file_path", None)
            # Over FILE_UPLOAD_MAX_MEMORY_SIZE Django spooled it to a file: moved, not copied.
            source: io.BytesIO | Path = Path(temporary()) if temporary else io.BytesIO(upload.read())
            if sources.file_lay(root, name, source) is None:
                sources.file_lay(root, f"file-{index + 1}", source)
            size += upload.size or 0
        return upload_receive(actor=actor, sender=sender, root=root, bytes_received=size,
                              patient=patient, order=order)  # fmt: skip
