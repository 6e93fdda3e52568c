"""STOW-RS (PS3.18 10.5): ``POST /dicomweb/studies[/{study}]``, a multipart/related body of
Part 10 files (``type="application/dicom"``), each kept through the very same durable receive
and ingest as a C-STORE (imaging/ingest/receive.py ``file_receive``): the bytes as sent,
durable before we answer, then indexed and linked by the ingest task.

The body is read as it arrives (multipart.py): each part goes to a temporary file in pieces,
then to the receive, which checks it and copies it into storage from the file (the checks need
the whole data set at hand; a file holds it, memory need not). The answer (PS3.18 10.5.3) is
the Store Instances Response Module as DICOM JSON: ReferencedSOPSequence (stored, each with its
RetrieveURL), FailedSOPSequence (each with its FailureReason), the study's RetrieveURL; 200 all
stored, 202 some failed, 409 none stored.
"""

import logging
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from typing import IO, Any, NamedTuple

import orjson
from django.conf import settings
from django.contrib.auth.models import User
from django.http import UnreadablePostError
from django.urls import reverse
from rest_framework import exceptions, parsers, status
from rest_framework.parsers import DataAndFiles
from rest_framework.request import Request
from rest_framework.response import Response

from imaging.dicom.records import integrity
from imaging.dicom.records.header import HeaderSummary
from imaging.dicom.records.status import CANNOT_UNDERSTAND, DATASET_DOES_NOT_MATCH_SOP_CLASS, OUT_OF_RESOURCES
from imaging.ingest.index import IndexMessage, Sender
from imaging.ingest.metadata_receive import BulkValue, instance_uids, metadata_receive
from imaging.ingest.part10 import NotPart10, file_meta_read
from imaging.ingest.queueing import IngestBatch
from imaging.ingest.receive import ObjectRefused, Refusal, file_receive
from integrations.api.auth import actor_for
from integrations.api.parsers import RequestTooLarge
from integrations.dicomweb import multipart
from integrations.dicomweb.accept import MEDIA_ALIASES, MEDIA_DEFAULT_SYNTAX, OCTET_STREAM
from integrations.dicomweb.base import DICOM_JSON, DicomWebView

log = logging.getLogger(__name__)

# What an instance stored over STOW-RS says it was received from, where a C-STORE's says its
# sender's AE title (the study page shows it; 16 characters at most). Who sent it is in the
# indexing message's sender and so in the audit log: the API client or the staff member.
RECEIVED_FROM = "STOW-RS"

DICOM = "application/dicom"
DICOM_XML = "application/dicom+xml"
# The metadata part of a metadata and bulk data request: the DICOM JSON of its instances, all in
# memory at once (pydicom builds each instance from it); bulk data goes to temporary files.
METADATA_MOST = 64 * 1024 * 1024
BULK_IN_MEMORY = 1 << 20  # a bulk data part over this is spooled to a temporary file as it arrives
REFERENCED_TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122  # PS3.18 Table I.2-2

# The receive's reasons, as STOW-RS Failure Reasons (PS3.18 I.2.2: the C-STORE statuses of
# PS3.4 B.2.3), as handlers.STORE_STATUS has them for DIMSE.
FAILURE_REASON = {
    Refusal.DOES_NOT_MATCH: DATASET_DOES_NOT_MATCH_SOP_CLASS,  # 0xA900, the URL's study too (10.5.1.2)
    Refusal.UNREADABLE: CANNOT_UNDERSTAND,  # 0xC000: not Part 10, malformed, cut off
    Refusal.OUT_OF_RESOURCES: OUT_OF_RESOURCES,  # 0xA700: it could not be kept
    Refusal.SYNTAX_NOT_SUPPORTED: REFERENCED_TRANSFER_SYNTAX_NOT_SUPPORTED,  # 0xC122 (Table I.2-2)
}


class LengthRequired(exceptions.APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_code = "length_required"
    default_detail = "Send the body with a Content-Length (or through a server that ends a chunked body)."


class BodyTooLarge(Exception):
    """A body without a declared length went past the limit while it was read."""


class _TooLarge(RequestTooLarge):
    """413 for a body found too large as it was read: what was stored before stays stored
    (durable and indexed; sent again, the same instances change nothing), and the message
    says so."""

    def __init__(self, limit: int, stored: list[IndexMessage]) -> None:
        super().__init__(limit)
        self.detail = exceptions.ErrorDetail(f"{self.detail}{_kept_already(stored)}", self.default_code)


class Failed(NamedTuple):
    """An instance not stored: its UIDs when its File Meta could be read, and why."""

    sop_class_uid: str
    sop_instance_uid: str
    reason: int
    detail: str


class Unread(parsers.BaseParser):
    """multipart/related, left for the view to read as it arrives. DRF parses a body only when
    asked, but its CSRF check (a staff session) asks for ``request.POST``: with no parser for
    the type that is a 415, and a parser that read it would hold the whole body in memory."""

    media_type = "multipart/related"

    def parse(
        self,
        stream: IO[Any] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> "DataAndFiles[Any, Any]":  # (generic in the stubs only)
        return DataAndFiles({}, {})


class StudiesStore(DicomWebView):
    """Store Instances (PS3.18 10.5): the whole body, or the instances of the study named."""

    parser_classes = [Unread]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # The answer is always DICOM JSON (or JSON): an Accept naming neither is a 406 (PS3.18
        # 8.7.4), which DRF's own negotiation gives. Forced only for an error's body.
        return super(DicomWebView, self).perform_content_negotiation(request, force=force)

    def post(self, request: Request, study: str | None = None) -> Response:
        boundary, kind = _boundary(request.META.get("CONTENT_TYPE", ""))
        if study is not None and not integrity.is_uid(study):
            raise exceptions.ParseError(f"{study[:80]!r} is not a Study Instance UID (PS3.5 9.1).")
        limit = settings.DICOMWEB_STOW_MAX_BYTES
        body = _body(request, limit)
        stored: list[IndexMessage] = []
        failed: list[Failed] = []
        batch = IngestBatch()  # one indexing task for the request (or for each 50 instances)
        sender = _sender(request)
        try:
            parts = multipart.parts_read(body, boundary)
            if kind == DICOM_JSON:
                _metadata_store(parts, study, sender, batch, stored, failed)
            for part in parts:
                _part_store(part, study, sender, batch, stored, failed)
        except multipart.Malformed as error:
            raise exceptions.ParseError(f"{error}{_kept_already(stored)}") from None
        except UnreadablePostError as error:  # the client went away mid-body
            raise exceptions.ParseError(
                f"The body could not be read: {error}{_kept_already(stored)}"
            ) from None
        except BodyTooLarge:
            if isinstance(body, _Capped):
                body.drain()
            raise _TooLarge(limit, stored) from None
        finally:
            batch.flush()
        if not stored and not failed:
            raise exceptions.ParseError("The body holds no instance.")
        log.info("STOW-RS from %s: %d stored, %d failed", sender["name"], len(stored), len(failed))
        code = (
            status.HTTP_200_OK
            if not failed
            else status.HTTP_202_ACCEPTED
            if stored
            else status.HTTP_409_CONFLICT
        )
        response = Response(_response(request, study, stored, failed), status=code)
        if failed:  # why, in words: the Failure Reasons are codes (RFC 7234 5.5: 299, persistent)
            response["Warning"] = _warning(failed)
        return response


def _boundary(content_type: str) -> tuple[bytes, str]:
    """The boundary of a ``multipart/related`` body and its ``type``: Part 10 files
    (``application/dicom``) or metadata and bulk data (``application/dicom+json``, PS3.18
    10.5.1). Any other media type is a 415, the XML metadata of PS3.19 too."""
    media_type, parameters = multipart.content_type_parse(content_type)
    kind = parameters.get("type", DICOM).strip().lower()
    if media_type == "multipart/related" and kind == DICOM_XML:
        raise exceptions.UnsupportedMediaType(
            content_type[:200],
            detail=f'Metadata as {DICOM_XML} is not taken here; send it as type="{DICOM_JSON}", or the '
            f'instances as type="{DICOM}" (PS3.18 10.5.1).',
        )
    if media_type != "multipart/related" or kind not in (DICOM, DICOM_JSON):
        raise exceptions.UnsupportedMediaType(
            content_type[:200],
            detail=f'Send multipart/related; type="{DICOM}" (Part 10 files) or type="{DICOM_JSON}" '
            f"(metadata, then its bulk data) (PS3.18 10.5.1).",
        )
    try:
        return multipart.boundary_check(parameters.get("boundary")), kind
    except multipart.Malformed as error:
        raise exceptions.ParseError(str(error)) from None


def _body(request: Request, limit: int) -> multipart.Readable:
    """The body to read: as long as its Content-Length says (over ``limit``: a 413 before a
    byte is read), or, sent chunked through a server that ends the stream with the body
    (``wsgi.input_terminated``: gunicorn), up to ``limit`` as it is read."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise RequestTooLarge(limit)
    stream: IO[bytes] | None = request.stream  # Django's request: it reads no further than Content-Length
    if declared > 0 and stream is not None:
        return stream
    if request.META.get("wsgi.input_terminated"):
        return _Capped(request.META["wsgi.input"], limit)
    raise LengthRequired()


class _Capped:
    """A stream that raises BodyTooLarge once more than ``limit`` bytes came from it."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream, self.limit, self.count = stream, limit, 0

    def read(self, size: int = -1, /) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        if self.count > self.limit:
            raise BodyTooLarge()
        return data

    def drain(self) -> None:
        """Read the rest and throw it away, up to ``limit`` bytes more: a client sending a
        body hears the answer only once it has sent it (a connection closed on a body still
        arriving is reset, and the 413 lost). More than that, and the connection is closed."""
        thrown = 0
        while thrown <= self.limit and (data := self.stream.read(multipart.PIECE)):
            thrown += len(data)


def _sender(request: Request) -> Sender:
    """Who stores: the API client, or the staff member (the audit log names them)."""
    actor = actor_for(request)
    user = actor.user if isinstance(actor.user, User) else None
    return {
        "channel": actor.channel,
        "name": actor.name or (user.get_username() if user is not None else ""),
        "user_id": user.pk if user is not None else None,
    }


def _part_store(
    part: multipart.Part,
    study: str | None,
    sender: Sender,
    batch: IngestBatch,
    stored: list[IndexMessage],
    failed: list[Failed],
) -> None:
    """One body part: written to a temporary file as it arrives, then received from it."""
    if part.content_type not in ("", DICOM):  # (no Content-Type: the body's type, PS3.18 8.6.1.2)
        part.skip()
        failed.append(
            Failed("", "", CANNOT_UNDERSTAND, f"A part of type {part.content_type[:80]}, not {DICOM}")
        )
        return
    with tempfile.NamedTemporaryFile(
        prefix="stow-", suffix=".dcm", dir=settings.FILE_UPLOAD_TEMP_DIR
    ) as file:
        try:
            for piece in part.pieces():
                _write(file, piece)
            _write(file, b"")
        except _WriteFailed as error:  # the temporary folder is full: this instance cannot be kept
            part.skip()
            failed.append(Failed("", "", OUT_OF_RESOURCES, f"Cannot take the instance in: {error}"))
            return
        try:
            stored.append(
                file_receive(
                    path=file.name,
                    calling_ae=RECEIVED_FROM,
                    batch=batch,
                    study_instance_uid=study,
                    sender=sender,
                )
            )
        except ObjectRefused as refused:
            failed.append(_failed(file.name, refused))


def _metadata_store(
    parts: Iterator[multipart.Part],
    study: str | None,
    sender: Sender,
    batch: IngestBatch,
    stored: list[IndexMessage],
    failed: list[Failed],
) -> None:
    """A metadata and bulk data body (PS3.18 10.5.1): the first part the DICOM JSON array of
    the instances, each later part bulk data named by its Content-Location, which the
    BulkDataURIs of the metadata give. The bulk data is read to the end first (a URI may name
    any later part), then each instance is made into a Part 10 file and received
    (imaging/ingest/metadata_receive.py)."""
    first = next(parts, None)
    if first is None:
        return
    if first.content_type not in ("", DICOM_JSON):
        raise exceptions.ParseError(
            f"The first part of a {DICOM_JSON} request is the metadata ({DICOM_JSON}), not "
            f"{first.content_type[:80]} (PS3.18 10.5.1)."
        )
    metadata = _metadata_read(first)
    with ExitStack() as files:
        bulk: dict[str, _BulkPart] = {}
        for part in parts:
            location = part.headers.get("content-location", "").strip()
            if not location:
                raise exceptions.ParseError(
                    "A bulk data part has no Content-Location: nothing in the metadata can name it "
                    "(PS3.18 10.5.1)."
                )
            bulk[location] = _bulk_part_read(part, files)

        def lookup(uri: str) -> BulkValue | None:
            part = bulk.get(uri)
            if part is None:
                return None
            if part.error:
                raise ObjectRefused(Refusal.OUT_OF_RESOURCES, f"Cannot take the bulk data in: {part.error}")
            part.file.seek(0)
            return BulkValue(part.file.read(), part.transfer_syntax, part.media_type)

        for instance in metadata:
            try:
                stored.append(
                    metadata_receive(
                        instance=instance,
                        bulk=lookup,
                        calling_ae=RECEIVED_FROM,
                        batch=batch,
                        study_instance_uid=study,
                        sender=sender,
                    )  # fmt: skip
                )
            except ObjectRefused as refused:
                uids = instance_uids(instance)
                log.warning("STOW-RS instance %s refused: %s", uids[1] or "(unknown)", refused.detail)
                failed.append(Failed(*uids, FAILURE_REASON[refused.reason], refused.detail))


class _BulkPart(NamedTuple):
    file: IO[bytes]
    media_type: str
    transfer_syntax: str | None
    error: str = ""


def _metadata_read(part: multipart.Part) -> list[Any]:
    """The metadata part: a JSON array (PS3.18 F.2: of DICOM JSON objects, one an instance)."""
    data = bytearray()
    for piece in part.pieces():
        data += piece
        if len(data) > METADATA_MOST:
            raise exceptions.ParseError(
                f"The metadata part is over {METADATA_MOST} bytes; send fewer instances."
            )
    try:
        metadata = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise exceptions.ParseError(f"The metadata part is not JSON: {error}") from None
    if not isinstance(metadata, list) or not metadata:
        raise exceptions.ParseError("The metadata part must be a JSON array of instances (PS3.18 F.2).")
    return metadata


def _bulk_part_read(part: multipart.Part, files: ExitStack) -> _BulkPart:
    """A bulk data part kept (in memory, or a temporary file past BULK_IN_MEMORY) with the
    transfer syntax its Content-Type says: its ``transfer-syntax`` parameter, else its media
    type's default (PS3.18 Table 8.7.3-5); None for application/octet-stream without one
    (uncompressed); "" for a media type that means no transfer syntax (image/png)."""
    media_type, parameters = multipart.content_type_parse(part.headers.get("content-type", ""))
    media_type = MEDIA_ALIASES.get(media_type, media_type)
    syntax: str | None = parameters.get("transfer-syntax", "").strip() or None
    if syntax is None and media_type not in (OCTET_STREAM, ""):
        syntax = MEDIA_DEFAULT_SYNTAX.get(media_type, "")
    file = files.enter_context(
        tempfile.SpooledTemporaryFile(max_size=BULK_IN_MEMORY, dir=settings.FILE_UPLOAD_TEMP_DIR)
    )
    try:
        for piece in part.pieces():
            _write(file, piece)
    except _WriteFailed as error:
        part.skip()
        return _BulkPart(file, media_type, syntax, str(error) or "the temporary folder is full")
    return _BulkPart(file, media_type, syntax)


class _WriteFailed(Exception):
    """Writing to the temporary file failed (reading the body raises its own errors)."""


def _write(file: IO[bytes], piece: bytes) -> None:
    """Write ``piece``; nothing (b""): flush what is written."""
    try:
        if piece:
            file.write(piece)
        else:
            file.flush()
    except OSError as error:
        raise _WriteFailed(error) from None


def _failed(path: str, refused: ObjectRefused) -> Failed:
    """A refused instance, named by its File Meta's UIDs when it has a readable one."""
    try:
        with open(path, "rb") as handle:
            meta = file_meta_read(handle)
        uids = meta.sop_class_uid, meta.sop_instance_uid
    except (NotPart10, OSError):
        uids = "", ""
    log.warning("STOW-RS instance %s refused: %s", uids[1] or "(unknown)", refused.detail)
    return Failed(*uids, FAILURE_REASON[refused.reason], refused.detail)


def _warning(failed: list[Failed]) -> str:
    words = "; ".join(f"{item.sop_instance_uid or 'a part'}: {item.detail}" for item in failed[:5])
    # One line of Latin-1 text in a quoted string (RFC 9110 5.5, 5.6.4).
    words = " ".join(words.encode("latin-1", "replace").decode("latin-1").split())
    words = words.replace("\\", "/").replace('"', "'")
    return f'299 VetPACS "{words[:1000]}"'


def _kept_already(stored: list[IndexMessage]) -> str:
    return f" The {len(stored)} instance(s) before it were stored." if stored else ""


# The Store Instances Response Module (PS3.18 10.5.3, Table I.1-1), in the DICOM JSON Model (PS3.18 F.2).
RETRIEVE_URL = "00081190"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_CLASS_UID = "00081150"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON_TAG = "00081197"


def _response(
    request: Request, study: str | None, stored: list[IndexMessage], failed: list[Failed]
) -> dict[str, Any]:
    base = request.build_absolute_uri(reverse("dicomweb:studies"))  # WADO-RS's addresses are under it

    def url(*uids: str) -> str:
        return "/".join([base, *uids])

    summaries = [_summary(message) for message in stored]
    studies = {summary["study_instance_uid"] for summary in summaries}
    # The study's Retrieve URL (Type 2, PS3.18 Table I.1-1): the one the request named, or the
    # one every stored instance is of; empty when they are of several.
    study = study or (studies.pop() if len(studies) == 1 else None)
    body: dict[str, Any] = {RETRIEVE_URL: _element("UR", url(study) if study else "")}
    if failed:
        body[FAILED_SOP_SEQUENCE] = {
            "vr": "SQ",
            "Value": [
                {
                    REFERENCED_SOP_CLASS_UID: _element("UI", item.sop_class_uid),
                    REFERENCED_SOP_INSTANCE_UID: _element("UI", item.sop_instance_uid),
                    FAILURE_REASON_TAG: {"vr": "US", "Value": [item.reason]},
                }
                for item in failed
            ],
        }
    if stored:
        body[REFERENCED_SOP_SEQUENCE] = {
            "vr": "SQ",
            "Value": [
                {
                    REFERENCED_SOP_CLASS_UID: _element("UI", summary["sop_class_uid"]),
                    REFERENCED_SOP_INSTANCE_UID: _element("UI", summary["sop_instance_uid"]),
                    RETRIEVE_URL: _element(
                        "UR",
                        url(
                            summary["study_instance_uid"],
                            "series",
                            summary["series_instance_uid"],
                            "instances",
                            summary["sop_instance_uid"],
                        ),
                    ),  # fmt: skip
                }
                for summary in summaries
            ],
        }
    return body


def _summary(message: IndexMessage) -> HeaderSummary:
    summary = message.get("summary")
    assert summary is not None, "the receive's messages carry the header's summary"
    return summary


def _element(vr: str, value: str) -> dict[str, Any]:
    """A DICOM JSON element; an empty value has no "Value" (PS3.18 F.2.5)."""
    return {"vr": vr, "Value": [value]} if value else {"vr": vr}
