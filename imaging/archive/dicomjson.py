"""DICOM JSON (PS3.18 F.2) written straight from a stored object's bytes, for the metadata kept
at indexing (metadata.py).

Why not pydicom's ``to_json_dict``: converting each element to a pydicom value and then to JSON
cost ~15 ms for a CT header of 260 elements, more than the rest of indexing it; reading the
values from the bytes costs a tenth of that, on the worker that indexes every object received.
pydicom still decodes what is not plain (character sets with code extensions, via
``pydicom.charset.decode_bytes``); a deflated object (PS3.5 A.5) is inflated first. Big Endian
(PS3.5 A.3, retired) is read too; its small binary values go inline as stored.

The walk steps over the top-level pixel data without reading it (its fragments' item headers
only, when encapsulated) and goes on to what follows it in the file (PS3.5 7.1.2: elements are in
tag order; Data Set Trailing Padding, private elements, a Digital Signatures Sequence), and never
reads a value larger than BULK_THRESHOLD: a binary one becomes a BulkDataURI (F.2.6), smaller
ones InlineBinary (F.2.7).
"""

import base64
import logging
import struct
import zlib
from functools import lru_cache
from typing import Any

import orjson
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import dictionary_VR
from pydicom.uid import UID

BULK_THRESHOLD = 1024  # bytes of a binary value above which it is bulk data (PS3.18 F.2.7)
UNDEFINED = 0xFFFFFFFF
PIXEL_TAGS = {0x7FE00010: "OW", 0x7FE00008: "OF", 0x7FE00009: "OD"}
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}  # PS3.5 7.1.2
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
NUMBERS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "UV": "Q", "SV": "q"}
SPLIT_TEXT = {"SH", "LO", "UC"}  # multi-valued, character set, leading and trailing spaces insignificant
WHOLE_TEXT = {"ST", "LT", "UT"}  # one value, character set, trailing spaces insignificant
PLAIN = {"AE", "AS", "CS", "DA", "DT", "TM", "UI"}  # default repertoire, multi-valued
AVAILABLE_TRANSFER_SYNTAX = "00083002"  # Available Transfer Syntax UID (PS3.18 Table 10.6.3-5)
log = logging.getLogger(__name__)


class Unreadable(ValueError):
    """The bytes are not a data set this reader can walk (cut off, nonsense lengths)."""


@lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str:
    """The VR of a tag in Implicit VR (PS3.5 A.1): the data dictionary's, UN if unknown."""
    if tag >> 16 & 1 and 0x10 <= tag & 0xFFFF <= 0xFF:
        return "LO"  # a private creator (PS3.5 7.8.1)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


class _Walk:
    """One data set's bytes read into DICOM JSON; ``bulk`` names a value's BulkDataURI path."""

    def __init__(self, data: bytes | memoryview, implicit: bool, little: bool = True) -> None:
        self.data, self.implicit = data, implicit
        self.order = "<" if little else ">"  # Big Endian: PS3.5 A.3 (retired, still met)

    def dataset(
        self, pos: int, end: int | None, encodings: list[str], path: str, top: bool
    ) -> tuple[dict[str, Any], int]:
        """The attributes from ``pos`` to ``end`` (None: to an Item Delimitation Item); returns
        them and where the data set ended."""
        data = self.data
        attributes: dict[str, Any] = {}
        limit = len(data) if end is None else end
        pixel_representation = 0
        while pos < limit:
            if pos + 8 > len(data):
                raise Unreadable(f"element header cut off at {pos}")
            group, element = struct.unpack_from(self.order + "HH", data, pos)
            tag = group << 16 | element
            if tag == ITEM_END:
                return attributes, pos + 8
            if top and tag in PIXEL_TAGS:
                # Never read, only stepped over: what follows it is metadata too (Data Set
                # Trailing Padding, a private element, a Digital Signatures Sequence: PS3.5 7.1).
                if self.implicit:
                    vr, length_at, pos = PIXEL_TAGS[tag], pos + 4, pos + 8
                else:
                    vr = bytes(data[pos + 4 : pos + 6]).decode("ascii", "replace")
                    length_at, pos = pos + 8, pos + 12
                (length,) = struct.unpack_from(self.order + "I", data, length_at)
                attributes[f"{tag:08X}"] = {"vr": vr, "BulkDataURI": f"{path}/{tag:08X}"}
                pos = self._fragments_skip(pos) if length == UNDEFINED else pos + length
                if pos > len(data):
                    raise Unreadable(f"value of {tag:08X} cut off")
                continue
            if self.implicit:
                vr = _dictionary_vr(tag)
                (length,) = struct.unpack_from(self.order + "I", data, pos + 4)
                pos += 8
            else:
                vr = bytes(data[pos + 4 : pos + 6]).decode("ascii", "replace")
                if not vr.isalpha() or not vr.isupper():
                    raise Unreadable(f"no VR at {pos}")
                if vr in LONG_VRS:
                    (length,) = struct.unpack_from(self.order + "I", data, pos + 8)
                    pos += 12
                else:
                    (length,) = struct.unpack_from(self.order + "H", data, pos + 6)
                    pos += 8
            key = f"{tag:08X}"
            walk = self
            if vr == "UN":
                # A value whose VR the sender did not know: the dictionary's, as pydicom reads it;
                # a sequence in it is encoded in Implicit VR Little Endian (PS3.5 6.2.2).
                vr = _dictionary_vr(tag)
                if vr == "UN" and length == UNDEFINED:
                    vr = "SQ"
                if vr == "SQ" and not self.implicit:
                    walk = _Walk(data, implicit=True)  # (and little endian, 6.2.2)
            if vr == "SQ":
                items, pos = walk.sequence(pos, length, encodings, f"{path}/{key}")
                attributes[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
                continue
            if length == UNDEFINED:  # encapsulated (an icon's pixel data): its fragments are skipped
                pos = self._fragments_skip(pos)
                attributes[key] = {"vr": "OB", "BulkDataURI": f"{path}/{key}"}
                continue
            if pos + length > len(data):
                raise Unreadable(f"value of {key} cut off")
            if element == 0:  # a group length is no attribute of the model (PS3.18 F.2)
                pos += length
                continue
            if " or " in vr:  # ambiguous in Implicit VR (PS3.5 A.1; PS3.3 C.7.6.3.1.3)
                vr = ("SS" if pixel_representation else "US") if vr == "US or SS" else "OW"
                if vr == "OW" and length <= 2:
                    vr = "US"
            value = data[pos : pos + length]
            pos += length
            if tag == 0x00080005:
                encodings = convert_encodings(
                    [v.strip() for v in bytes(value).decode("ascii", "replace").split("\\")]
                )
            elif tag == 0x00280103 and length >= 2:
                pixel_representation = struct.unpack_from(self.order + "H", value)[0]
            try:
                attributes[key] = self.element(vr, value, encodings, f"{path}/{key}")
            except (ValueError, UnicodeError, struct.error):  # a nonsense value: named, nothing else lost
                log.warning("attribute %s cannot be given as DICOM JSON", key, exc_info=True)
                attributes[key] = {"vr": vr}
        if end is None:
            raise Unreadable("item without its delimitation item")
        return attributes, pos

    def element(self, vr: str, value: bytes | memoryview, encodings: list[str], bulk: str) -> dict[str, Any]:
        """One attribute's DICOM JSON (F.2.2) from its value's bytes."""
        length = len(value)
        if vr in BINARY_VRS:
            if length > BULK_THRESHOLD:
                return {"vr": vr, "BulkDataURI": bulk}
            return (
                {"vr": vr, "InlineBinary": base64.b64encode(value).decode("ascii")} if length else {"vr": vr}
            )
        if not length:
            return {"vr": vr}
        if vr in NUMBERS:
            code = NUMBERS[vr]
            count = length // struct.calcsize(code)
            return {"vr": vr, "Value": list(struct.unpack_from(f"{self.order}{count}{code}", value))}
        if vr == "AT":
            pairs = struct.unpack_from(f"{self.order}{length // 2}H", value)
            return {
                "vr": vr,
                "Value": [f"{pairs[n]:04X}{pairs[n + 1]:04X}" for n in range(0, len(pairs) - 1, 2)],
            }
        raw = bytes(value)
        if vr in PLAIN:
            text = raw.decode("latin-1").rstrip("\x00 ")
            values = [part.strip().rstrip("\x00") for part in text.split("\\")]
            return {"vr": vr, "Value": values} if text else {"vr": vr}
        if vr in ("DS", "IS"):
            return {"vr": vr, "Value": _numbers(raw.decode("latin-1"), vr)}
        text = _decode(raw, encodings, vr)
        if vr == "PN":
            names = [_person_name(part) for part in text.rstrip("\x00 ").split("\\")]
            return {"vr": vr, "Value": names} if any(names) else {"vr": vr}
        if vr in WHOLE_TEXT or vr == "UR":
            text = text.rstrip("\x00 ")
            return {"vr": vr, "Value": [text]} if text else {"vr": vr}
        text = text.rstrip("\x00 ")  # SH, LO, UC; and any VR this reader does not know, as text
        return {"vr": vr, "Value": [part.strip() for part in text.split("\\")]} if text else {"vr": vr}

    def sequence(
        self, pos: int, length: int, encodings: list[str], path: str
    ) -> tuple[list[dict[str, Any]], int]:
        """A sequence's items (PS3.5 7.5), of defined or undefined length."""
        data = self.data
        items: list[dict[str, Any]] = []
        end = None if length == UNDEFINED else pos + length
        while end is None or pos < end:
            if pos + 8 > len(data):
                raise Unreadable("sequence cut off")
            tag = struct.unpack_from(self.order + "HH", data, pos)
            tag_value = tag[0] << 16 | tag[1]
            (item_length,) = struct.unpack_from(self.order + "I", data, pos + 4)
            pos += 8
            if tag_value == SEQUENCE_END:
                break
            if tag_value != ITEM:
                raise Unreadable(f"({tag[0]:04X},{tag[1]:04X}) where a sequence item belongs")
            item_end = None if item_length == UNDEFINED else pos + item_length
            item, pos = self.dataset(pos, item_end, encodings, f"{path}/{len(items)}", top=False)
            items.append(item)
        return items, pos

    def _fragments_skip(self, pos: int) -> int:
        """Where an encapsulated value (PS3.5 A.4) ends: its items' headers walked, from the
        last frame's first fragment when the Basic Offset Table says where that is (a 1000-frame
        object is then a few items, not a thousand)."""
        data = self.data
        if pos + 8 <= len(data):
            group, element, bot_length = struct.unpack_from(self.order + "HHI", data, pos)
            first_fragment = pos + 8 + bot_length
            if (group << 16 | element) == ITEM and bot_length >= 4 and first_fragment <= len(data):
                (last,) = struct.unpack_from(self.order + "I", data, first_fragment - 4)
                at = first_fragment + last
                if at + 8 <= len(data) and struct.unpack_from(self.order + "HH", data, at) == (
                    0xFFFE,
                    0xE000,
                ):
                    pos = at
        while pos + 8 <= len(data):
            group, element, length = struct.unpack_from(self.order + "HHI", data, pos)
            pos += 8 + (0 if (group << 16 | element) == SEQUENCE_END else length)
            if (group << 16 | element) == SEQUENCE_END:
                return pos
        raise Unreadable("encapsulated value cut off")


def _numbers(text: str, vr: str) -> list[int | float | None]:
    """DS and IS values as JSON numbers (F.2.3.1): empty ones null."""
    values: list[int | float | None] = []
    for part in text.split("\\"):
        part = part.strip(" \x00")
        if not part:
            values.append(None)
        elif vr == "IS":
            values.append(int(float(part)) if "." in part or "e" in part.lower() else int(part))
        else:
            values.append(float(part))
    return values


def _decode(raw: bytes, encodings: list[str], vr: str) -> str:
    """Text in the data set's character set (PS3.5 6.1): one encoding decoded directly, code
    extensions (ISO 2022 escapes) by pydicom."""
    if len(encodings) == 1 and b"\x1b" not in raw:
        return raw.decode(encodings[0], "replace")
    delimiters = {0x5C, 0x3D, 0x5E} if vr == "PN" else {0x5C} if vr in SPLIT_TEXT else set()
    return decode_bytes(raw, encodings, delimiters | {0x09, 0x0A, 0x0C, 0x0D})


def _person_name(value: str) -> dict[str, str]:
    """A PN value's component groups (PS3.5 6.2.1; F.2.2): Alphabetic, Ideographic, Phonetic."""
    groups = value.strip().split("=")
    names = dict(zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False))
    return {kind: name for kind, name in names.items() if name}


def file_meta_end(data: bytes | memoryview) -> tuple[int, str]:
    """Where a Part 10 file's data set starts, and its transfer syntax (PS3.10 7.1)."""
    if len(data) < 144 or bytes(data[128:132]) != b"DICM":
        raise Unreadable("not a DICOM file with File Meta Information (PS3.10 7.1)")
    (group_length,) = struct.unpack_from("<I", data, 140)
    start, pos, syntax = 144 + group_length, 144, ""
    while pos < start:  # Explicit VR Little Endian, always (PS3.10 7.1)
        _, element = struct.unpack_from("<HH", data, pos)
        vr = bytes(data[pos + 4 : pos + 6]).decode("ascii", "replace")
        if vr in LONG_VRS:
            (length,) = struct.unpack_from("<I", data, pos + 8)
            pos += 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            pos += 8
        if element == 0x0010:
            syntax = bytes(data[pos : pos + length]).decode("ascii").rstrip("\x00 ")
        pos += length
    return start, syntax


def part10_document(data: bytes | memoryview) -> str:
    """The DICOM JSON text of a Part 10 object's data set, bulk data as BulkDataURIs relative
    to the instance (``bulkdata/7FE00010``), the transfer syntax it is stored in as Available
    Transfer Syntax UID. Raises Unreadable (or pydicom's errors, for a Big Endian one)."""
    start, syntax = file_meta_end(data)
    uid = UID(syntax)
    body: bytes | memoryview = data
    if uid.is_deflated:
        body, start = zlib.decompress(bytes(data[start:]), -zlib.MAX_WBITS), 0
    walk = _Walk(body, implicit=uid.is_implicit_VR, little=uid.is_little_endian)
    try:
        attributes, _ = walk.dataset(start, len(body), convert_encodings(None), "bulkdata", top=True)
    except struct.error as error:
        raise Unreadable(str(error)) from None
    attributes[AVAILABLE_TRANSFER_SYNTAX] = {"vr": "UI", "Value": [syntax]}
    return orjson.dumps(dict(sorted(attributes.items()))).decode()
