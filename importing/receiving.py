"""Reading an upload request (the page's XHR and the REST API's multipart/form-data): its
size checked before a byte is read, its files held in memory or spooled one by one
(UploadFileHandler), each laid out at the path it had in the sender's folder (a DICOMDIR finds
its files by those paths), then upload_receive."""

import io
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile, TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
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


class UploadFileHandler(FileUploadHandler):
    """Each file of an upload held in memory while it is small, else written to a temporary
    file as it arrives (a TemporaryUploadedFile, as Django's). Django's own two handlers decide
    for the whole request: one over FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB: any CD) had each of
    its files, however small, in a NamedTemporaryFile of its own, made, written and removed,
    which took five times as long as parsing the request. Here a file stays in memory while it
    is at most FILE_UPLOAD_MAX_MEMORY_SIZE and the request's files in memory at most
    MEMORY_MOST together; past either it goes to a temporary file."""

    MEMORY_MOST = 64 * 1024**2

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.held = 0  # bytes of this request's files in memory
        self.memory: io.BytesIO | None = None
        self.spooled: TemporaryUploadedFile | None = None

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.memory, self.spooled = io.BytesIO(), None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if self.spooled is None:
            assert self.memory is not None  # (new_file made it)
            most = settings.FILE_UPLOAD_MAX_MEMORY_SIZE
            if self.memory.tell() + len(raw_data) <= most and self.held + len(raw_data) <= self.MEMORY_MOST:
                self.memory.write(raw_data)
                self.held += len(raw_data)
                return None
            self.spooled = TemporaryUploadedFile(
                self.file_name or "", self.content_type, 0, self.charset, self.content_type_extra
            )
            self.spooled.write(self.memory.getbuffer())
            self.held -= self.memory.tell()
            self.memory = None
        self.spooled.write(raw_data)
        return None

    def file_complete(self, file_size: int) -> UploadedFile:
        if self.spooled is not None:
            self.spooled.seek(0)
            self.spooled.size = file_size
            return self.spooled
        assert self.memory is not None
        self.memory.seek(0)
        return InMemoryUploadedFile(
            self.memory, self.field_name, self.file_name, self.content_type, file_size, self.charset,
            self.content_type_extra,
        )  # fmt: skip

    def upload_interrupted(self) -> None:
        if self.spooled is not None:
            self.spooled.close()  # (a temporary file: removed)


def request_prepare(request: HttpRequest) -> None:
    """Before anything reads an upload's body: its files to be read by UploadFileHandler, and
    a body declared over IMPORT_MAX_BYTES a 413."""
    request.upload_handlers = [UploadFileHandler(request)]
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
            # A large file was spooled to a temporary file (UploadFileHandler): moved, not copied.
            source: UploadedFile | Path = Path(temporary()) if temporary else upload
            if sources.file_lay(root, name, source) is None:
                sources.file_lay(root, f"file-{index + 1}", source)
            size += upload.size or 0
        return upload_receive(actor=actor, sender=sender, root=root, bytes_received=size,
                              patient=patient, order=order)  # fmt: skip
