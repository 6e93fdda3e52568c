"""A sender's Part 10 file (PS3.10 7.1): where its data set starts, and what its File Meta
Information says (a STOW-RS body part is one, PS3.18 10.5.1: the File Meta tells the transfer
syntax and the SOP Class and Instance that a C-STORE's request would have told).

A file that is not one (no preamble and 'DICM', no group length first, a File Meta that is cut
off or lacks what we must read) is refused as unreadable; receive.py says what that means.
"""

import struct
from typing import BinaryIO, NamedTuple

from imaging.dicom.records import integrity

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
