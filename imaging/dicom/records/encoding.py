"""One DICOM data element as bytes, little endian (PS3.5 7.1): the command sets of the DIMSE
responses (Implicit VR, PS3.7 6.3.1), the worklist answers (either), and the File Meta
Information of a stored file (Explicit VR, PS3.10 7.1) are all written by ``element_encode``.

It takes the value already as bytes and adds only what the element structure asks for: the
padding to an even length and the header. pydicom's writer does the same and more (it converts
and checks each value again), which cost more than the rest of a C-STORE response or a worklist
answer; the headers are packed by structs compiled once.
"""

import struct

# PS3.5 7.1.2, Table 7.1-1: under Explicit VR these have two reserved bytes and a 4-byte length;
# all others a 2-byte length.
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
SHORT_VRS = frozenset({
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL", "SS",
    "ST", "TM", "UI", "UL", "US",
})  # fmt: skip
# PS3.5 6.2: every value has an even length. A UID is padded with a NUL, OB (and, should one come
# odd, the other O* VRs and UN) with a 0x00 byte, text with a space. The numeric binary VRs are
# whole 2-, 4- or 8-byte numbers and never odd.
NUL_PADDED = frozenset({"UI", "OB", "OD", "OF", "OL", "OV", "OW", "UN"})

# PS3.5 7.1.1-7.1.3: tag (group, element), then implicit: a 4-byte length; explicit: the VR and a
# 2-byte length, or the VR, two reserved bytes and a 4-byte length.
IMPLICIT_HEADER = struct.Struct("<HHI")
EXPLICIT_HEADERS = {
    **{vr: (struct.Struct("<HH2sH"), vr.encode("ascii")) for vr in SHORT_VRS},
    **{vr: (struct.Struct("<HH2s2xI"), vr.encode("ascii")) for vr in LONG_VRS},
}


def element_encode(tag: int, vr: str, value: bytes, *, implicit_vr: bool) -> bytes:
    """The element ``tag`` (group << 16 | element) with ``value``, padded to an even length,
    behind its header: Implicit VR (no VR on the wire) or Explicit VR Little Endian."""
    if len(value) % 2:
        value += b"\x00" if vr in NUL_PADDED else b" "
    if implicit_vr:
        return IMPLICIT_HEADER.pack(tag >> 16, tag & 0xFFFF, len(value)) + value
    try:
        header, vr_bytes = EXPLICIT_HEADERS[vr]
        return header.pack(tag >> 16, tag & 0xFFFF, vr_bytes, len(value)) + value
    except KeyError:
        raise ValueError(f"({tag >> 16:04X},{tag & 0xFFFF:04X}): unknown VR {vr!r}") from None
    except struct.error:  # a value over 0xFFFF bytes behind a 2-byte length (PS3.5 6.2.2)
        raise ValueError(
            f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr}: {len(value)} bytes do not fit its length field"
        ) from None
