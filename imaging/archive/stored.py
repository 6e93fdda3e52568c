"""A stored object's header read without its bulk data, and where its pixel data lies in the file.

WADO-RS ``/metadata``, ``/frames`` and ``/bulkdata`` all read a stored object this way: the
attributes up to the pixel data (large values left unread: pydicom's ``defer_size`` skips over
them), then the pixel data element's header alone, so that a frame is read from its own offset
and a 500 MB multi-frame object never passes through memory to answer a metadata or frame request.
What follows the pixel data (Data Set Trailing Padding, a private element, a Digital Signatures
Sequence: PS3.5 7.1) is not read here: the metadata walk (dicomjson.py) steps over the pixel
data to it, and bulkdata.py reads the whole data set, the pixel data left deferred, for a value
of it.
"""

import mmap
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO, NamedTuple, cast

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

from imaging.archive.dicomjson import file_meta_end
from imaging.dicom.records import integrity
from imaging.ingest.storage import default_storage

# Values larger than this are not read with the header (PS3.18 F.2.7 lets the server choose the
# size above which a binary value is bulk data; text this long is read when it is converted).
DEFER_SIZE = 64 * 1024
UNDEFINED_LENGTH = 0xFFFFFFFF
# Pixel Data, Float Pixel Data, Double Float Pixel Data (PS3.3 C.7.6.3) and their VRs in
# Implicit VR (PS3.5 A.1: OW for Pixel Data; the float ones have one VR each).
PIXEL_TAGS = {0x7FE00010: "OW", 0x7FE00008: "OF", 0x7FE00009: "OD"}
# Explicit VRs whose length is 4 bytes after 2 reserved ones (PS3.5 7.1.2, Table 7.1-1).
LONG_LENGTH_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


class PixelElement(NamedTuple):
    """The pixel data element of a stored object: where its value starts in the file and how
    long it is (UNDEFINED_LENGTH: encapsulated, PS3.5 A.4)."""

    tag: int
    vr: str
    length: int
    value_at: int

    @property
    def encapsulated(self) -> bool:
        return self.length == UNDEFINED_LENGTH


class StoredHeader(NamedTuple):
    """A stored object's attributes before its pixel data, its transfer syntax and its pixel data
    element (None: no pixel data, or a deflated object, whose ``dataset`` is whole instead)."""

    dataset: Dataset
    transfer_syntax: UID
    pixel: PixelElement | None


@contextmanager
def object_open(storage_key: str) -> Iterator[BinaryIO]:
    """The stored object as a file opened for reading (local disk or S3)."""
    with default_storage.open(storage_key, "rb") as handle:
        yield cast(BinaryIO, handle)


def header_read(handle: BinaryIO) -> StoredHeader:
    """Read a stored Part 10 object's header from ``handle`` (left open: deferred values are read
    from it when converted). A deflated object (PS3.5 A.5) is inflated whole by pydicom: there
    the data set is read to its end and no offset is given."""
    dataset = dcmread(handle, defer_size=DEFER_SIZE, stop_before_pixels=True)
    syntax = UID(dataset.file_meta.TransferSyntaxUID)
    if syntax.is_deflated:
        handle.seek(0)
        return StoredHeader(dcmread(handle, defer_size=DEFER_SIZE), syntax, None)
    # pydicom stopped at the pixel data's element header and rewound to its start.
    return StoredHeader(dataset, syntax, _pixel_element(handle, syntax))


def _pixel_element(handle: BinaryIO, syntax: UID) -> PixelElement | None:
    """The pixel data element header at the file's position, if that is where the file is."""
    start = handle.tell()
    head = handle.read(8)
    if len(head) < 8:
        return None
    order = "<" if syntax.is_little_endian else ">"
    group, element = struct.unpack(order + "HH", head[:4])
    tag = group << 16 | element
    if tag not in PIXEL_TAGS:
        return None
    if syntax.is_implicit_VR:  # tag, 4-byte length (PS3.5 7.1.3)
        (length,) = struct.unpack(order + "I", head[4:8])
        return PixelElement(tag, PIXEL_TAGS[tag], length, start + 8)
    vr = head[4:6]
    if vr in LONG_LENGTH_VRS:  # tag, VR, 2 reserved bytes, 4-byte length (PS3.5 7.1.2)
        extra = handle.read(4)
        if len(extra) < 4:
            return None
        (length,) = struct.unpack(order + "I", extra)
        return PixelElement(tag, vr.decode("ascii"), length, start + 12)
    (length,) = struct.unpack(order + "H", head[6:8])
    return PixelElement(tag, vr.decode("ascii", "replace"), length, start + 8)


class PixelLayout(NamedTuple):
    """What a frame read needs of a stored object: its transfer syntax, whether it has pixel
    data, how many frames, the bytes of one uncompressed frame as stored (None: frames do not
    start on a byte, Bits Allocated 1), the pixel data element (None: a deflated object) and the
    Extended Offset Table (PS3.3 C.7.6.3.1.8) if it has one."""

    syntax: UID
    has_pixels: bool
    frames: int
    frame_size: int | None
    one_bit: bool
    pixel: PixelElement | None
    extended_offsets: tuple[bytes, bytes] | None


def layout_read(handle: BinaryIO) -> PixelLayout:
    """The pixel layout of the stored object open in ``handle``. A file on disk in a little
    endian syntax is walked element header by element header (integrity.check, the listener's
    own walk: 0.3 ms for a CT header where pydicom's read took 2); anything else is read by
    pydicom (header_read)."""
    try:
        fileno = handle.fileno()
    except (AttributeError, OSError, ValueError):  # no file on disk (S3)
        fileno = None
    if fileno is not None:
        with mmap.mmap(fileno, 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                layout = _layout_walked(view)
            finally:
                view.release()
        if layout is not None:
            return layout
    handle.seek(0)
    dataset, syntax, pixel = header_read(handle)
    extended = None
    if "ExtendedOffsetTable" in dataset and "ExtendedOffsetTableLengths" in dataset:
        extended = (bytes(dataset.ExtendedOffsetTable), bytes(dataset.ExtendedOffsetTableLengths))
    bits = int(dataset.get("BitsAllocated", 8))
    return PixelLayout(
        syntax, pixel is not None or any(tag in dataset for tag in PIXEL_TAGS),
        int(dataset.get("NumberOfFrames") or 1),
        _frame_size(dataset.get("Rows"), dataset.get("Columns"), dataset.get("SamplesPerPixel"), bits),
        bits == 1, pixel, extended,
    )  # fmt: skip


def _frame_size(rows: object, columns: object, samples: object, bits: int) -> int | None:
    try:
        size = int(str(rows)) * int(str(columns)) * int(str(samples or 1)) * bits
    except ValueError:
        return None
    return size // 8 if size % 8 == 0 else None


def _layout_walked(view: memoryview) -> PixelLayout | None:
    """The layout from the element headers, or None where pydicom must read it (deflated, big
    endian, or not as PS3.5 says: pydicom is lenient)."""
    try:
        start, syntax_text = file_meta_end(view)
        syntax = UID(syntax_text)
        if syntax.is_deflated or not syntax.is_little_endian:
            return None
        data = view[start:]
        elements = integrity.check(data, implicit=syntax.is_implicit_VR, little=True)
    except (ValueError, struct.error):  # (integrity.Malformed and file_meta_end's Unreadable too)
        return None

    def value(tag: int) -> bytes | None:
        if tag not in elements:
            return None
        _, offset, length = elements[tag]
        return bytes(data[offset : offset + length])

    def number(tag: int, default: int) -> int:
        raw = value(tag)
        return struct.unpack("<H", raw[:2])[0] if raw and len(raw) >= 2 else default

    pixel = None
    for tag, implicit_vr in PIXEL_TAGS.items():
        if tag in elements:
            vr, offset, length = elements[tag]
            pixel = PixelElement(tag, vr or implicit_vr, length, start + offset)
    frames_text = (value(0x00280008) or b"").decode("ascii", "replace").strip(" \x00")
    try:
        frames = int(float(frames_text)) if frames_text else 1
    except ValueError:
        return None
    bits = number(0x00280100, 8)
    offsets, lengths = value(0x7FE00001), value(0x7FE00002)
    return PixelLayout(
        syntax, pixel is not None, frames,
        _frame_size(number(0x00280010, 0), number(0x00280011, 0), number(0x00280002, 1), bits),
        bits == 1, pixel, (offsets, lengths) if offsets is not None and lengths is not None else None,
    )  # fmt: skip
