"""Is a received data set complete? A walk over its element headers, values skipped.

pydicom reads a value that ends early without complaint (it returns the shorter bytes), so a
C-STORE cut off mid-transfer would otherwise be stored and acknowledged. This walk checks that
every element's length fits in what arrived and that every undefined-length sequence, item and
encapsulated Pixel Data ends with its delimiter (PS3.5 7.1.2-7.1.3 element structure, 7.5
nesting of data sets, A.4 encapsulation). It costs microseconds: no value is decoded.
"""

import struct
import zlib

from imaging.dicom.records import encoding

UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
# PS3.5 Table 7.1-1: explicit VRs with a 2-byte reserved field and a 4-byte length, as read.
LONG_VRS = {vr.encode("ascii") for vr in encoding.LONG_VRS}
VRS = {bytes((a, b)) for a in range(ord("A"), ord("Z") + 1) for b in range(ord("A"), ord("Z") + 1)}
# Element headers (PS3.5 7.1.1-7.1.3), by byte order: implicit VR (tag, 4-byte length), explicit
# VR (tag, VR, 2-byte length), and the 4-byte length of a long VR. Compiled once: the walk is a
# loop over every element of every image received.
IMPLICIT, EXPLICIT, LONG_LENGTH = 0, 1, 2
HEADERS = {
    little: (struct.Struct(order + "HHI"), struct.Struct(order + "HH2sH"), struct.Struct(order + "I"))
    for little, order in ((True, "<"), (False, ">"))
}


class Malformed(ValueError):
    pass


# What the checks read: a data set's bytes, or a view of them (a file mapped, a receive buffer).
BytesLike = bytes | bytearray | memoryview


def is_uid(value: object) -> bool:
    """A UID (PS3.5 9.1): 1 to 64 characters, digits and dots. (Leading zeros in a component,
    which the rule forbids, are let through: harmless, and some modalities write them.)"""
    return isinstance(value, str) and 0 < len(value) <= 64 and value.replace(".", "").isdigit()


def inflate(data: BytesLike) -> bytes:
    """Deflated Explicit VR Little Endian (PS3.5 A.5): raw deflate; a cut stream is an error."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data) + inflater.flush()
    except zlib.error as error:
        raise Malformed(f"deflated data set does not inflate: {error}") from None
    if not inflater.eof:
        raise Malformed("deflated data set ends before its deflate stream does")
    return out


# A walked element: (VR or None when implicit, value offset, value length).
Element = tuple[str | None, int, int]


def check(data: BytesLike, *, implicit: bool, little: bool) -> dict[int, Element]:
    """Raise Malformed unless ``data`` is a complete data set in the given encoding.

    Returns the top-level elements it passed: {tag: (VR or None, value offset, value length)},
    so that a caller can read the few it needs without parsing the data set again.
    """
    if not data:
        raise Malformed("empty data set")
    elements: dict[int, Element] = {}
    end = _walk(data, 0, len(data), implicit, little, in_item=False, elements=elements)
    if end != len(data):
        raise Malformed(f"trailing bytes after the data set at offset {end}")
    return elements


def _walk(
    data: BytesLike,
    pos: int,
    end: int,
    implicit: bool,
    little: bool,
    in_item: bool,
    elements: dict[int, Element] | None = None,
) -> int:
    """Walk elements from ``pos``; return where they end (after an item delimiter if in_item).
    ``elements``, when given, collects the elements walked (the top level only)."""
    header = HEADERS[little][IMPLICIT if implicit else EXPLICIT]
    long_length = HEADERS[little][LONG_LENGTH]
    while pos < end:
        if pos + 8 > end:
            raise Malformed(f"element header cut off at offset {pos}")
        # An item tag has a 4-byte length and no VR: the VR read here is then not one, and unused.
        if implicit:
            group, element, length = header.unpack_from(data, pos)
            vr = None
        else:
            group, element, vr, length = header.unpack_from(data, pos)
        tag = group << 16 | element
        if tag == ITEM_END:
            if not in_item:
                raise Malformed(f"item delimiter outside an item at offset {pos}")
            return pos + 8
        if tag in (ITEM, SEQUENCE_END):
            raise Malformed(f"misplaced item tag {group:04X},{element:04X} at offset {pos}")
        if vr is None:
            pos += 8
        elif vr not in VRS:
            raise Malformed(f"invalid VR 0x{vr.hex()} at offset {pos + 4}")
        elif vr in LONG_VRS:
            if pos + 12 > end:
                raise Malformed(f"element header cut off at offset {pos}")
            (length,) = long_length.unpack_from(data, pos + 8)
            pos += 12
        else:
            pos += 8
        if elements is not None:
            elements[tag] = (vr.decode() if vr else None, pos, length)
        if length == UNDEFINED:
            if tag == 0x7FE00010:
                pos = _fragments(data, pos, end, little)
            elif vr == b"UN":  # PS3.5 6.2.2: its items are Implicit VR Little Endian
                pos = _sequence(data, pos, end, True, True)
            else:  # a sequence (implicit VR: any undefined length is one, PS3.5 7.5.1)
                pos = _sequence(data, pos, end, implicit, little)
        else:
            if pos + length > end:
                raise Malformed(
                    f"element ({group:04X},{element:04X}) needs {length} bytes at offset {pos}, "
                    f"only {end - pos} arrived"
                )
            if vr == b"SQ" and length:
                _sequence(data, pos, pos + length, implicit, little, defined=True)
            pos += length
    if in_item:
        raise Malformed("item without its delimiter")
    return pos


def _sequence(
    data: BytesLike, pos: int, end: int, implicit: bool, little: bool, defined: bool = False
) -> int:
    endian = "<" if little else ">"
    while pos < end:
        if pos + 8 > end:
            break
        group, element, length = struct.unpack_from(endian + "HHI", data, pos)
        tag = group << 16 | element
        pos += 8
        if tag == SEQUENCE_END:
            if defined:
                raise Malformed("sequence delimiter in a defined-length sequence")
            return pos
        if tag != ITEM:
            raise Malformed(f"expected an item, found ({group:04X},{element:04X}) at offset {pos - 8}")
        if length == UNDEFINED:
            pos = _walk(data, pos, end, implicit, little, in_item=True)
        else:
            if pos + length > end:
                raise Malformed(f"item of {length} bytes at offset {pos} is cut off")
            _walk(data, pos, pos + length, implicit, little, in_item=False)
            pos += length
    if defined and pos == end:
        return pos
    raise Malformed("sequence without its delimiter: the data set is cut off")


def _fragments(data: BytesLike, pos: int, end: int, little: bool) -> int:
    """Encapsulated Pixel Data: items (offset table, fragments) up to a sequence delimiter."""
    endian = "<" if little else ">"
    while pos + 8 <= end:
        group, element, length = struct.unpack_from(endian + "HHI", data, pos)
        tag = group << 16 | element
        pos += 8
        if tag == SEQUENCE_END:
            return pos
        if tag != ITEM or length == UNDEFINED:
            raise Malformed(f"bad encapsulated pixel data item at offset {pos - 8}")
        if pos + length > end:
            raise Malformed(f"pixel data fragment of {length} bytes at offset {pos} is cut off")
        pos += length
    raise Malformed("encapsulated pixel data without its delimiter: the data set is cut off")
