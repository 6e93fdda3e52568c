"""The head of a Part 10 file (PS3.10 7.1: preamble, 'DICM', File Meta Information): ours,
made for an object a C-STORE brings (``file_meta_make``), and a sender's, read from a file it
sent (``file_meta_read``: a STOW-RS body part, PS3.18 10.5.1, whose File Meta tells the transfer
syntax and the SOP Class and Instance that a C-STORE's request would have told).

A file that is not one (no preamble and 'DICM', no group length first, a File Meta that is cut
off or lacks what we must read) is refused as unreadable; receive.py says what that means.
"""

import struct
from typing import BinaryIO, NamedTuple

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

from imaging.dicom.records import integrity
from imaging.dicom.records.encoding import element_encode

# A File Meta Information group is a few hundred bytes; a larger "group length" is not one.
FILE_META_MOST = 64 * 1024

MEDIA_STORAGE_SOP_CLASS_UID = 0x00020002
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
TRANSFER_SYNTAX_UID = 0x00020010


class NotPart10(ValueError):
    """Not a Part 10 file, or one whose File Meta Information cannot be read."""


class FileMeta(NamedTuple):
    """A Part 10 file's head as it is: ``head`` the preamble, 'DICM' and the File Meta group
    (the bytes kept in front of the data set), and the three values read from it."""

    head: bytes
    transfer_syntax: str
    sop_class_uid: str
    sop_instance_uid: str


def data_set_start(handle: BinaryIO) -> int:
    """Where a Part 10 file's data set starts: after the preamble, 'DICM' and the File Meta
    Information group, whose length its first element gives (PS3.10 7.1)."""
    head = handle.read(144)
    if len(head) < 144 or head[128:132] != b"DICM" or head[132:138] != b"\x02\x00\x00\x00UL":
        raise NotPart10("Not a DICOM file with File Meta Information (PS3.10 7.1)")
    group_length: int = struct.unpack_from("<I", head, 140)[0]
    return 144 + group_length


def file_meta_read(handle: BinaryIO) -> FileMeta:
    """The File Meta Information of the Part 10 file ``handle`` is at the start of: always
    Explicit VR Little Endian (PS3.10 7.1), group 0002 only, with the three UIDs we need."""
    start = data_set_start(handle)
    if start - 144 > FILE_META_MOST:
        raise NotPart10(f"File Meta Information group length over {FILE_META_MOST} bytes")
    handle.seek(0)
    head = handle.read(start)
    if len(head) < start:
        raise NotPart10("The File Meta Information is cut off")
    group = head[144:]
    try:
        elements = integrity.check(group, implicit=False, little=True) if group else {}
    except integrity.Malformed as error:
        raise NotPart10(f"Malformed File Meta Information: {error}") from None
    if any(tag >> 16 != 0x0002 for tag in elements):
        raise NotPart10("The File Meta Information group length does not end the group")
    values = []
    for tag, name in (
        (TRANSFER_SYNTAX_UID, "Transfer Syntax UID"),
        (MEDIA_STORAGE_SOP_CLASS_UID, "Media Storage SOP Class UID"),
        (MEDIA_STORAGE_SOP_INSTANCE_UID, "Media Storage SOP Instance UID"),
    ):
        if tag not in elements:
            raise NotPart10(f"The File Meta Information has no {name}")
        _vr, offset, length = elements[tag]
        # UI: ASCII, padded to an even length with NUL (PS3.5 6.2)
        value = group[offset : offset + length].rstrip(b"\x00 ").decode("ascii", "replace")
        if not integrity.is_uid(value):
            raise NotPart10(f"The File Meta Information's {name} is not a valid UID")
        values.append(value)
    return FileMeta(head, *values)


def file_meta_make(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str, calling_ae: str) -> bytes:
    """Preamble, 'DICM' and our File Meta Information (PS3.10 7.1), as pydicom would write it
    (Explicit VR Little Endian, tag order, group length first). Encoded here: pydicom's writer
    checked and converted each value again, and cost more than the storage write."""
    elements = b"".join([
        _meta_element(0x0001, "OB", b"\x00\x01"),  # File Meta Information Version
        _meta_element(0x0002, "UI", str(sop_class_uid)),
        _meta_element(0x0003, "UI", str(sop_instance_uid)),
        _meta_element(0x0010, "UI", str(transfer_syntax)),
        _meta_element(0x0012, "UI", PYNETDICOM_IMPLEMENTATION_UID),
        _meta_element(0x0013, "SH", PYNETDICOM_IMPLEMENTATION_VERSION),
        _meta_element(0x0016, "AE", calling_ae),  # Source Application Entity Title
    ])  # fmt: skip
    return b"\x00" * 128 + b"DICM" + _meta_element(0x0000, "UL", struct.pack("<I", len(elements))) + elements


def _meta_element(element: int, vr: str, value: str | bytes) -> bytes:
    """A File Meta element: group 0002, Explicit VR Little Endian (PS3.10 7.1)."""
    if isinstance(value, str):
        value = value.encode("ascii", "replace")
    return element_encode(0x00020000 | element, vr, value, implicit_vr=False)
