"""Receiving DICOM objects, whatever channel brings them (a C-STORE, a STOW-RS body part).

``instance_receive`` checks an object, keeps it durably (storage.py) and queues it for
indexing (queueing.py: IngestBatch, instances_queue); no database. The object comes as its data set's
bytes, as a Part 10 file (PS3.10 7: pynetdicom writes a C-STORE's data set to one), or as an
IncomingObject written to storage while it arrived. ``file_receive`` keeps a sender's own Part 10
file as it is, File Meta Information and all (a STOW-RS body part, PS3.18 10.5). What must not
be accepted raises ObjectRefused with a Refusal, a reason each channel words its own way (a
DIMSE status in imaging/dicom/net/handlers.py, a failure reason in integrations/dicomweb/stow.py).
The worker's side is index.py.
"""

import enum
import logging
import mmap
import os
from collections.abc import Sequence
from datetime import datetime
from io import BytesIO
from types import TracebackType
from typing import Literal, NamedTuple, TypeAlias, TypeVar

from django.utils.timezone import now
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import UID, AllTransferSyntaxes

from imaging.dicom.records import integrity
from imaging.dicom.records.header import HeaderSummary, header_summary
from imaging.dicom.records.integrity import BytesLike
from imaging.ingest import storage
from imaging.ingest.index import IndexMessage, Sender
from imaging.ingest.part10 import FileMeta, NotPart10, data_set_start, file_meta_make, file_meta_read
from imaging.ingest.queueing import IngestBatch, instances_queue

log = logging.getLogger(__name__)

# What instance_receive takes as ``source`` (its docstring says what each is).
Source: TypeAlias = "BytesLike | BytesIO | str | os.PathLike[str] | IncomingObject"

# The transfer syntaxes an object may be stored in: pydicom's (the listener accepts the same).
KNOWN_SYNTAXES = frozenset(AllTransferSyntaxes)
# Pixel Data, Float Pixel Data, Double Float Pixel Data: an image carries one of them.
PIXEL_DATA = {0x7FE00010, 0x7FE00008, 0x7FE00009}


class Refusal(enum.Enum):
    """Why an object is refused: a reason, not a protocol's status. The DICOM handler answers
    each with its C-STORE status (PS3.4 B.2.3); STOW-RS with its failure reasons (PS3.18
    10.5.3)."""

    DOES_NOT_MATCH = "does not match"  # UIDs missing, invalid, or not the request's (its study's)
    UNREADABLE = "unreadable"  # malformed, cut off, or a value that cannot be decoded
    OUT_OF_RESOURCES = "out of resources"  # it could not be kept (storage failed, a full disk)
    # Not a transfer syntax this archive knows (none a C-STORE can bring: the association
    # negotiates it, PS3.7 D.3.3.2; a STOW-RS file or its metadata names it itself).
    SYNTAX_NOT_SUPPORTED = "transfer syntax not supported"


class ObjectRefused(Exception):
    """An object that must not be acknowledged: ``reason`` (a Refusal) and ``detail``, a sentence
    for the sender (a channel may shorten it: a DIMSE Error Comment is 64 characters)."""

    def __init__(self, reason: Refusal, detail: object) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, str(detail)


class IncomingObject:
    """An object whose data set is still arriving (a C-STORE's fragments, PS3.8 E.2; a STOW-RS
    body part), written to storage piece by piece as it comes, so that the disk works while the
    network does. ``write`` each piece, then ``arrived(data)`` with the whole data set (which the
    writer holds anyway, for the checks) and pass it to instance_receive as its source; or
    ``abort``. Nothing is durable or acknowledged until instance_receive has checked the whole
    of it and committed it; until then it is a part file that is never indexed
    (storage.object_writer)."""

    def __init__(
        self, *, sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str, calling_ae: str
    ) -> None:
        self.sop_instance_uid, self.transfer_syntax = str(sop_instance_uid), str(transfer_syntax)
        self.received_at = now()
        self.key = storage.instance_key(self.sop_instance_uid, self.received_at)
        self.file_meta = file_meta_make(sop_class_uid, sop_instance_uid, transfer_syntax, calling_ae)
        self.size = 0  # data set bytes written
        self.error: Exception | None = None
        self.data: BytesLike | None = None  # the whole data set, once it has arrived
        self.writer: storage.ObjectWriter | None
        try:
            self.writer = storage.object_writer(self.key)
            self.writer.write(self.file_meta)
        except Exception as error:
            self.writer = None
            self.error = _bare(error)  # refused (out of resources) when the object is complete

    @staticmethod
    def fits(sop_instance_uid: str | None) -> bool:
        """Whether a request's SOP Instance UID can name a storage key before the data set
        that should carry the same UID is read: a UID (PS3.5 9.1), nothing else."""
        return integrity.is_uid(str(sop_instance_uid or ""))

    def write(self, piece: bytes | memoryview) -> None:
        if self.error is not None:
            return
        try:
            assert self.writer is not None, "written after abort"  # an error, as the write's own
            self.writer.write(piece)
            self.size += len(piece)
        except Exception as error:  # a full disk: the C-STORE is refused once it is complete
            self.error = _bare(error)
            self.abort()

    def arrived(self, data: BytesLike) -> None:
        """All of it is here: ``data`` is the whole data set (bytes-like), as written."""
        self.data = data

    def commit(self) -> str:
        if self.error is not None:
            raise self.error
        assert self.writer is not None, "committed after abort"  # an error, as storage's own
        return self.writer.commit()

    def abort(self) -> None:
        """Throw away what was written (a refused, failed or never finished object)."""
        writer, self.writer = self.writer, None
        if writer is not None:
            try:
                writer.abort()
            except OSError:
                log.exception("could not remove the part of %s", self.key)


_Error = TypeVar("_Error", bound=BaseException)


def _bare(error: _Error) -> _Error:
    """``error`` without its traceback, to be kept past the write that raised it. The
    traceback's frames hold the piece written, a view of the association's receive buffer
    (imaging/dicom/net/fast/dimse.py): a BytesIO with a view on it cannot grow, so the next fragment
    of the data set failed to decode and the association was aborted (a full disk did that)."""
    error.__context__ = error.__cause__ = None
    return error.with_traceback(None)


def source_discard(source: Source) -> None:
    """Drop a source that will not be received (its sender may not store): an IncomingObject's
    part written so far is removed; any other source is its channel's to drop."""
    if isinstance(source, IncomingObject):
        source.abort()


def instance_receive(
    *, source: Source, transfer_syntax: str, sop_class_uid: str, sop_instance_uid: str, calling_ae: str,
    file_meta_bytes: bytes | None = None, batch: IngestBatch | None = None,
    study_instance_uid: str | None = None, sender: Sender | None = None,
) -> str:  # fmt: skip
    """Check one received object, keep it durably, queue its indexing; return its storage key.

    ``source`` is the data set's bytes (or a BytesIO of them), a Part 10 file (a path), or an
    IncomingObject that has written them to storage as they arrived (committed or thrown away
    here). Raises ObjectRefused for anything that must not be acknowledged. The data set is
    stored as it came (no decode and re-encode), behind our File Meta Information (made here
    unless ``file_meta_bytes`` brings it): from a file it is copied, never held whole in
    memory. The indexing message joins ``batch`` (an IngestBatch: one per association) or
    goes at once. With ``study_instance_uid``, an object of another study is refused (the
    request named its study: PS3.18 10.5.1.2). ``sender`` says who sent it, when that is not
    the AE title ``calling_ae`` (an API client: the audit log names it).
    """
    checks = _Checks(transfer_syntax, sop_class_uid, sop_instance_uid, study_instance_uid)
    if isinstance(source, IncomingObject):
        incoming: IncomingObject | None = source
        data = source.data
        if source.error is None and (
            data is None or source.size != len(data) or source.sop_instance_uid != str(sop_instance_uid)
            or source.transfer_syntax != str(transfer_syntax)
        ):  # fmt: skip
            source.abort()  # not these bytes after all: store them the ordinary way
            incoming = None
        # (An incoming object whose writing failed is refused below, when it is committed.)
        if data is None:
            raise ObjectRefused(Refusal.UNREADABLE, "The data set never arrived whole")
        with _data_set(data) as data_set:
            return _receive(data_set, incoming, checks, calling_ae, file_meta_bytes, batch, sender)[
                "storage_key"
            ]
    with _data_set(source) as data_set:
        return _receive(data_set, None, checks, calling_ae, file_meta_bytes, batch, sender)["storage_key"]


def file_receive(
    *, path: "str | os.PathLike[str]", calling_ae: str, batch: IngestBatch | None = None,
    study_instance_uid: str | None = None, sender: Sender | None = None,
) -> IndexMessage:  # fmt: skip
    """Check a sender's Part 10 file, keep it durably as it is (its own preamble and File Meta
    Information too: the stored object is the file sent, byte for byte), queue its indexing;
    return the indexing message (its key, and the summary of its header). The File Meta tells
    the transfer syntax and the SOP Class and Instance UIDs that the data set must carry
    (PS3.10 7.1), as a C-STORE request's do. A file that is not Part 10 is refused as
    unreadable. The rest as instance_receive.
    """
    meta = _file_meta(path)
    checks = _Checks(meta.transfer_syntax, meta.sop_class_uid, meta.sop_instance_uid, study_instance_uid)
    with _data_set(path) as data_set:
        return _receive(data_set, None, checks, calling_ae, meta.head, batch, sender)


def _file_meta(path: "str | os.PathLike[str]") -> FileMeta:
    """A sender's file's File Meta Information (PS3.10 7.1); a file that is not Part 10 or cannot
    be read is refused as unreadable."""
    try:
        with open(path, "rb") as handle:
            return file_meta_read(handle)
    except NotPart10 as error:
        raise ObjectRefused(Refusal.UNREADABLE, error) from None
    except OSError as error:
        raise ObjectRefused(Refusal.UNREADABLE, f"Cannot read the object: {error}") from None


class _Checks(NamedTuple):
    """What a data set must be: in this transfer syntax, of this SOP Class and Instance (the
    request's, or a file's File Meta), and of this study when one is named."""

    transfer_syntax: str
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str | None


class _data_set:
    """The data set of a source, as something bytes-like, for a ``with``: bytes as they are;
    a BytesIO's buffer; a Part 10 file's data set (after its File Meta Information, PS3.10
    7.1) mapped from the file, so that only what the checks read is read."""

    def __init__(self, source: "BytesLike | BytesIO | str | os.PathLike[str]") -> None:
        self.source = source
        self.mapped: mmap.mmap | None = None
        self.view: memoryview | None = None

    def __enter__(self) -> BytesLike:
        source = self.source
        if isinstance(source, (bytes, bytearray, memoryview)):
            return source
        if hasattr(source, "getvalue"):
            return source.getvalue()
        try:
            with open(source, "rb") as handle:
                start = data_set_start(handle)
                if os.fstat(handle.fileno()).st_size <= start:
                    return b""
                self.mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except NotPart10 as error:
            raise ObjectRefused(Refusal.UNREADABLE, error) from None
        except OSError as error:
            raise ObjectRefused(Refusal.UNREADABLE, f"Cannot read the object: {error}") from None
        self.view = memoryview(self.mapped)[start:]
        return self.view

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> Literal[False]:
        if self.mapped is not None:
            try:
                if self.view is not None:
                    self.view.release()
                self.mapped.close()
            except BufferError:  # a view of it outlived the call (a traceback): the GC closes it
                pass
        return False


def _receive(
    data: BytesLike,
    incoming: IncomingObject | None,
    checks: _Checks,
    calling_ae: str,
    file_meta_bytes: bytes | None,
    batch: IngestBatch | None,
    sender: Sender | None,
) -> IndexMessage:
    transfer_syntax, sop_class_uid, sop_instance_uid, _ = checks
    try:
        summary = _checked_summary(data, checks)
    except ObjectRefused:
        if incoming is not None:
            incoming.abort()
        raise
    try:
        if incoming is not None:
            key, received_at, file_meta_size = incoming.key, incoming.received_at, len(incoming.file_meta)
            incoming.commit()
        else:
            if file_meta_bytes is None:
                file_meta_bytes = file_meta_make(sop_class_uid, sop_instance_uid, transfer_syntax, calling_ae)
            received_at = now()
            key, file_meta_size = (
                storage.instance_key(str(sop_instance_uid), received_at),
                len(file_meta_bytes),
            )
            _store(key, file_meta_bytes, data)
    except Exception as error:
        log.exception("storage failed for %s from %s", sop_instance_uid, calling_ae)
        raise ObjectRefused(Refusal.OUT_OF_RESOURCES, f"Storage failed: {error}") from None
    message = _message(key, summary, calling_ae, received_at, file_meta_size + len(data), sender)
    if batch is None:
        instances_queue([message])
    else:
        batch.add(message)
    return message


def _checked_summary(data: BytesLike, checks: _Checks) -> HeaderSummary:
    """What the index needs of a data set, once it is checked to be the one announced
    (``checks``), whole and readable; else ObjectRefused."""
    transfer_syntax, sop_class_uid, sop_instance_uid, study_instance_uid = checks
    if transfer_syntax not in KNOWN_SYNTAXES:
        raise ObjectRefused(
            Refusal.SYNTAX_NOT_SUPPORTED,
            f"Transfer syntax {str(transfer_syntax)[:64]} is not one this archive stores",
        )
    ds = _checked_header(data, transfer_syntax)
    for keyword in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if not ds.get(keyword):
            raise ObjectRefused(Refusal.DOES_NOT_MATCH, f"{keyword} is missing")
        # PS3.5 9.1: at most 64 characters, digits and dots. A longer one does not fit the
        # index (nor a storage key): acknowledged, it could never be indexed.
        if not integrity.is_uid(ds[keyword].value):
            raise ObjectRefused(Refusal.DOES_NOT_MATCH, f"{keyword} is not a valid UID")
    if str(ds.SOPInstanceUID) != str(sop_instance_uid):
        raise ObjectRefused(Refusal.DOES_NOT_MATCH, "SOP Instance UID differs from the request's")
    if str(ds.SOPClassUID) != str(sop_class_uid):
        raise ObjectRefused(Refusal.DOES_NOT_MATCH, "SOP Class UID differs from the request's")
    if study_instance_uid is not None and str(ds.StudyInstanceUID) != study_instance_uid:
        raise ObjectRefused(Refusal.DOES_NOT_MATCH, "Study Instance UID differs from the request's")
    try:
        return header_summary(ds, transfer_syntax_uid=transfer_syntax)
    except Exception as error:  # a value pydicom cannot decode (an unknown VR, a 3-byte US)
        raise ObjectRefused(Refusal.UNREADABLE, f"Unreadable data set: {error}") from None


def _message(
    key: str, summary: HeaderSummary, calling_ae: str, received_at: datetime, file_size: int,
    sender: Sender | None,
) -> IndexMessage:  # fmt: skip
    message: IndexMessage = {
        "storage_key": key,
        "summary": summary,
        "received_from": calling_ae,
        "received_at": received_at.isoformat(),
        "file_size": file_size,
    }
    if sender is not None:
        message["sender"] = sender
    return message


# A web upload's files are made durable this many at a time (storage.objects_commit), and each
# group's indexing queued as one task once it is: as many as an association's IngestBatch holds,
# so that the worker indexes the first groups while the later ones are written.
FILES_GROUP = 50


def files_receive(
    paths: "Sequence[str | os.PathLike[str]]", *, calling_ae: str, sender: Sender | None = None,
) -> list[IndexMessage | ObjectRefused]:  # fmt: skip
    """file_receive for many files sent together and answered together (a web upload): each
    file checked and written as file_receive does, then each group of FILES_GROUP made durable
    at once (storage.objects_commit: their fsyncs share the disk's journal commits, where
    file_receive waits for one each), and only then their indexing queued, one task a group.
    One result a path, in order: its indexing message, or the ObjectRefused that file_receive
    would have raised (one that could not be made durable is refused too, and never queued)."""
    results: list[IndexMessage | ObjectRefused] = []
    for start in range(0, len(paths), FILES_GROUP):
        written: list[tuple[int, storage.ObjectWriter, IndexMessage]] = []
        group: list[IndexMessage | ObjectRefused] = []
        try:
            for path in paths[start : start + FILES_GROUP]:
                try:
                    writer, message = _file_write(path, calling_ae, sender)
                except ObjectRefused as refused:
                    group.append(refused)
                    continue
                written.append((len(group), writer, message))
                group.append(message)
        except BaseException:
            for _, writer, _ in written:
                writer.abort()
            raise
        outcomes = storage.objects_commit([writer for _, writer, _ in written])
        durable: list[IndexMessage] = []
        for (at, _, message), outcome in zip(written, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error("storage failed for %s from %s: %s", message["storage_key"], calling_ae, outcome)
                group[at] = ObjectRefused(Refusal.OUT_OF_RESOURCES, f"Storage failed: {outcome}")
            else:
                durable.append(message)
        instances_queue(durable)
        results += group
    return results


def _file_write(
    path: "str | os.PathLike[str]", calling_ae: str, sender: Sender | None
) -> "tuple[storage.ObjectWriter, IndexMessage]":
    """A sender's Part 10 file checked as file_receive checks it and written to storage as it
    is, not yet committed: the writer, and the message to queue once it is."""
    meta = _file_meta(path)
    checks = _Checks(meta.transfer_syntax, meta.sop_class_uid, meta.sop_instance_uid, None)
    with _data_set(path) as data:
        summary = _checked_summary(data, checks)
        received_at = now()
        key = storage.instance_key(meta.sop_instance_uid, received_at)
        try:
            writer = storage.object_writer(key)
            try:
                _pieces_write(writer, meta.head, data)
            except BaseException:
                writer.abort()
                raise
        except Exception as error:
            log.exception("storage failed for %s from %s", meta.sop_instance_uid, calling_ae)
            raise ObjectRefused(Refusal.OUT_OF_RESOURCES, f"Storage failed: {error}") from None
        return writer, _message(key, summary, calling_ae, received_at, len(meta.head) + len(data), sender)


COPY_PIECE = 1 << 20  # a data set mapped from a file is copied to storage this much at a time


def _store(key: str, file_meta_bytes: bytes, data: BytesLike) -> None:
    """Our File Meta, then the data set as it came: in one piece from memory, in pieces from a
    mapped file (never read whole into memory)."""
    if not isinstance(data, memoryview):
        storage.object_put(key, file_meta_bytes + data)
        return
    writer = storage.object_writer(key)
    try:
        _pieces_write(writer, file_meta_bytes, data)
    except BaseException:
        writer.abort()
        raise
    writer.commit()


def _pieces_write(writer: storage.ObjectWriter, file_meta_bytes: bytes, data: BytesLike) -> None:
    writer.write(file_meta_bytes)
    view = memoryview(data)
    for at in range(0, len(view), COPY_PIECE):
        writer.write(view[at : at + COPY_PIECE])


# What the index needs (imaging/dicom/records/header.header_summary), and the character set to read it.
HEADER_TAGS = {
    0x00080005, 0x00080016, 0x00080018, 0x00080020, 0x00080030, 0x00080050, 0x00080060, 0x00080090,
    0x00081010, 0x00081030, 0x0008103E, 0x00100010, 0x00100020, 0x00100030, 0x00102201, 0x00102202,
    0x00180015, 0x0020000D, 0x0020000E, 0x00200011, 0x00200013, 0x00280008, 0x00280010, 0x00280011,
    # Study ID, Patient's Sex, Sex Neutered, Breed Description, Responsible Person and Role:
    # what Query/Retrieve answers for a study not linked to an animal.
    0x00200010, 0x00100040, 0x00102203, 0x00102292, 0x00102297, 0x00102298,
}  # fmt: skip


def _checked_header(data: BytesLike, transfer_syntax: str) -> Dataset:
    """The header elements the index needs, after checking that the whole data set arrived
    and that an image has its pixel data. One walk over the element headers does both; pydicom
    then decodes only those elements (a full parse cost more than the rest of the handler)."""
    ts = UID(transfer_syntax)
    try:
        if ts.is_deflated:
            data = integrity.inflate(data)
        elements = integrity.check(data, implicit=ts.is_implicit_VR, little=ts.is_little_endian)
        first = min(elements)
        if first < 0x00080000:
            # Command (0000) and File Meta (0002) elements are never part of a data set (PS3.5
            # 7.1, PS3.10 7.1), nor groups 0001-0007 (PS3.5 7.8.1). Kept behind our File Meta,
            # a Transfer Syntax UID there would be read in place of ours.
            raise integrity.Malformed(f"element ({first >> 16:04X},{first & 0xFFFF:04X}) in a data set")
        ds = Dataset()
        ds.set_original_encoding(ts.is_implicit_VR, ts.is_little_endian, None)
        for tag in HEADER_TAGS & elements.keys():
            vr, offset, length = elements[tag]
            ds[tag] = RawDataElement(
                Tag(tag),
                vr,
                length,
                bytes(data[offset : offset + length]),
                offset,
                ts.is_implicit_VR,
                ts.is_little_endian,
            )
        ds.get("SOPInstanceUID"), ds.get("SOPClassUID")  # decode now: a nonsense value must fail here
    except integrity.Malformed as error:
        raise ObjectRefused(Refusal.UNREADABLE, f"Malformed data set: {error}") from None
    except Exception as error:  # pydicom raises many kinds on nonsense values
        raise ObjectRefused(Refusal.UNREADABLE, f"Unreadable data set: {error}") from None
    if "Rows" in ds and not PIXEL_DATA & elements.keys():
        raise ObjectRefused(Refusal.UNREADABLE, "Image without pixel data: the data set is cut off")
    return ds
