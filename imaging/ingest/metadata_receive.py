"""An instance sent as metadata and bulk data (STOW-RS, PS3.18 10.5.1: a DICOM JSON object of
the PS3.18 F.2 model whose BulkDataURIs name other parts of the request) made into a Part 10
file with pydicom, then kept by the very same durable receive as a Part 10 upload
(receive.py ``file_receive``): the same checks, storage, indexing and refusals.

The transfer syntax of the file is the metadata's Transfer Syntax UID (0002,0010) when it has
one (PS3.18 10.5.1.2: the origin server needs it for compressed pixel data), else the one the
Pixel Data's bulk data part says (its media type's ``transfer-syntax`` parameter, or that media
type's default, PS3.18 Table 8.7.3-5), else Explicit VR Little Endian (PS3.18 8.7.3.5.2: bulk
data without one is uncompressed). One we do not know is refused as
Refusal.SYNTAX_NOT_SUPPORTED (STOW-RS Failure Reason C122, PS3.18 Table I.2-2).

Compressed Pixel Data comes as one bulk data part, the frame's bytes (PS3.5 A.4: encapsulated
here as one frame), or a video's whole bitstream (PS3.5 8.2.5-8.2.8: a video is one "frame");
an image of several compressed frames cannot be told apart in one part and is refused (send it
as a Part 10 file).
"""

import tempfile
from collections.abc import Callable
from typing import Any, NamedTuple

from django.conf import settings
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, AllTransferSyntaxes, ExplicitVRLittleEndian

from imaging.archive.transcode import VIDEO_SYNTAXES
from imaging.ingest.index import IndexMessage, Sender
from imaging.ingest.queueing import IngestBatch
from imaging.ingest.receive import ObjectRefused, Refusal, file_receive

PIXEL_DATA = "7FE00010"
TRANSFER_SYNTAX_UID = "00020010"
FRAGMENT_MOST = 1 << 30  # a fragment's length is 32 bits (PS3.5 A.4); a video's bitstream is cut up


class BulkValue(NamedTuple):
    """A bulk data part of the request: its bytes, and the transfer syntax its Content-Type
    says (None: it says none, as application/octet-stream without the parameter; "" : a media
    type that names no transfer syntax we know, such as image/png)."""

    data: bytes
    transfer_syntax: str | None
    media_type: str


# The bulk data part a BulkDataURI names, or None: no part of the request has that
# Content-Location. Raises ObjectRefused (Refusal.OUT_OF_RESOURCES) when the part could not
# be kept while the request was read.
BulkLookup = Callable[[str], BulkValue | None]


def instance_uids(instance: object) -> tuple[str, str]:
    """The SOP Class and Instance UIDs the metadata says, as far as it says them (for a
    FailedSOPSequence item)."""
    if not isinstance(instance, dict):
        return "", ""
    return _first(instance, "00080016") or "", _first(instance, "00080018") or ""


def _first(attributes: dict[str, Any], tag: str) -> str | None:
    """An attribute's first value in DICOM JSON (PS3.18 F.2.2), as text, if it has one."""
    element = attributes.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    first = values[0] if isinstance(values, list) and values else None
    return None if first is None or isinstance(first, (dict, list)) else str(first)


def metadata_receive(
    *,
    instance: object,
    bulk: BulkLookup,
    calling_ae: str,
    batch: IngestBatch | None = None,
    study_instance_uid: str | None = None,
    sender: Sender | None = None,
) -> IndexMessage:
    """Make the instance's Part 10 file (in a temporary file) and receive it as file_receive
    does; raises ObjectRefused."""
    dataset = _dataset(instance, bulk)
    with tempfile.NamedTemporaryFile(
        prefix="stow-json-", suffix=".dcm", dir=settings.FILE_UPLOAD_TEMP_DIR
    ) as file:
        try:
            dataset.save_as(file, enforce_file_format=True)
            file.flush()
        except OSError as error:
            raise ObjectRefused(Refusal.OUT_OF_RESOURCES, f"Cannot write the instance: {error}") from None
        except Exception as error:  # pydicom cannot encode a value (a nonsense VR, a bad number)
            raise ObjectRefused(Refusal.UNREADABLE, f"The metadata cannot be encoded: {error}") from None
        return file_receive(
            path=file.name,
            calling_ae=calling_ae,
            batch=batch,
            study_instance_uid=study_instance_uid,
            sender=sender,
        )


def _dataset(instance: object, bulk: BulkLookup) -> Dataset:
    if not isinstance(instance, dict):
        raise ObjectRefused(Refusal.UNREADABLE, "An item of the metadata array is not a DICOM JSON object")
    # File Meta elements (group 0002) are not part of the data set (PS3.10 7.1).
    meta = {tag: value for tag, value in instance.items() if tag.upper().startswith("0002")}
    body = {tag: value for tag, value in instance.items() if tag not in meta}
    syntax = _syntax(meta, body, bulk)
    used: dict[str, BulkValue] = {}

    def bulk_value(tag: str, vr: str, uri: str) -> bytes:
        value = bulk(uri)
        if value is None:
            raise ObjectRefused(
                Refusal.UNREADABLE, f"BulkDataURI {uri[:200]} of {tag} names no part of the request"
            )
        used[tag] = value
        if tag.upper() != PIXEL_DATA or not UID(syntax).is_encapsulated:
            return value.data
        return _encapsulated(value.data, syntax, body)

    try:
        dataset = Dataset.from_json(body, bulk_value)
    except ObjectRefused:
        raise
    except Exception as error:  # pydicom's many errors for a value its VR cannot hold
        raise ObjectRefused(
            Refusal.UNREADABLE, f"The metadata is not a DICOM JSON data set: {error}"
        ) from None
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = UID(syntax)
    sop_class, sop_instance = dataset.get("SOPClassUID"), dataset.get("SOPInstanceUID")
    if not sop_class or not sop_instance:
        raise ObjectRefused(Refusal.DOES_NOT_MATCH, "The metadata has no SOP Class UID or SOP Instance UID")
    dataset.file_meta.MediaStorageSOPClassUID = sop_class
    dataset.file_meta.MediaStorageSOPInstanceUID = sop_instance
    return dataset


def _syntax(meta: dict[str, Any], body: dict[str, Any], bulk: BulkLookup) -> str:
    """The transfer syntax of the file (the module's docstring says which), checked."""
    from_meta = _first(meta, TRANSFER_SYNTAX_UID)
    pixel = body.get(PIXEL_DATA)
    uri = pixel.get("BulkDataURI") if isinstance(pixel, dict) else None
    part = bulk(uri) if isinstance(uri, str) else None
    from_part = part.transfer_syntax if part is not None else None
    if part is not None and from_part == "":
        raise ObjectRefused(
            Refusal.SYNTAX_NOT_SUPPORTED,
            f"The Pixel Data is sent as {part.media_type[:80]}, which carries no transfer syntax this archive "
            f"stores (PS3.18 Table 8.7.3-5)",
        )
    if from_meta and from_part and from_meta != from_part:
        raise ObjectRefused(
            Refusal.UNREADABLE,
            f"The metadata's Transfer Syntax UID {from_meta[:64]} is not the Pixel Data part's {from_part[:64]}",
        )
    syntax = from_meta or from_part or ExplicitVRLittleEndian
    if syntax not in AllTransferSyntaxes:
        raise ObjectRefused(
            Refusal.SYNTAX_NOT_SUPPORTED, f"Transfer syntax {syntax[:64]} is not one this archive stores"
        )
    return syntax


def _encapsulated(data: bytes, syntax: str, body: dict[str, Any]) -> bytes:
    """A compressed Pixel Data part as its encapsulated value (PS3.5 A.4): one frame, or a
    video's bitstream in fragments."""
    frames = _first(body, "00280008")  # Number of Frames (IS: a number or a string in DICOM JSON)
    count = int(frames) if frames and frames.isdigit() else 1
    if syntax in VIDEO_SYNTAXES:
        pieces = max(1, -(-len(data) // FRAGMENT_MOST))
        return encapsulate([data], fragments_per_frame=pieces)
    if count > 1:
        raise ObjectRefused(
            Refusal.UNREADABLE,
            f"Compressed Pixel Data of {count} frames cannot be sent as one bulk data part; send the "
            f"instance as a Part 10 file (application/dicom)",
        )
    return encapsulate([data])
