"""DIMSE messages and PDUs read and written the short way (PS3.7 Annex E, PS3.8 9.3.5), where
pynetdicom's general machinery cost more than the work: received P-DATA-TF bodies, the
C-STORE-RSP and C-FIND-RSP command sets, and a message cut into P-DATA-TF PDUs. Pure functions
of bytes and pynetdicom primitives; reactor.py and dimse.py wire them in."""

import struct

from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

from imaging.dicom.records.encoding import element_encode
from imaging.dicom.records.integrity import BytesLike, is_uid
from imaging.dicom.records.status import error_comment


class DecodedPData:
    """A received P-DATA-TF PDU, already its P-DATA primitive (fsm.DT_2 asks for that)."""

    __slots__ = ("primitive",)

    def __init__(self, primitive: P_DATA) -> None:
        self.primitive = primitive

    def to_primitive(self) -> P_DATA:
        return self.primitive


def p_data_decode(body: bytes | bytearray) -> DecodedPData | None:
    """The presentation data value items of a P-DATA-TF PDU's body (PS3.8 9.3.5: each a 4-byte
    length, the presentation context ID, then the value: its message control header and the
    fragment, PS3.8 E.2), or None if they do not add up to the body. A data set fragment stays
    a view of the bytes read (decode_msg copies it once, where it assembles the data set); a
    command fragment, which pynetdicom may treat as bytes anywhere, is made bytes."""
    view, at, end = memoryview(body), 0, len(body)
    items: list[tuple[int, bytes | memoryview]] = []
    while at < end:
        if end - at < 6:
            return None
        (length,) = struct.unpack_from(">L", body, at)
        if length < 2 or at + 4 + length > end:
            return None
        value = view[at + 5 : at + 4 + length]
        items.append((body[at + 4], bytes(value) if value[0] & 0x01 else value))
        at += 4 + length
    if not items:
        return None
    primitive = P_DATA()
    primitive.presentation_data_value_list = []  # as pynetdicom's to_primitive: its setter wants bytes
    # The setter's annotation says bytes; a data set fragment stays a view on purpose (above).
    primitive.presentation_data_value_list.extend(items)  # type: ignore[arg-type]
    return DecodedPData(primitive)


def store_response_command(primitive: C_STORE) -> bytes:
    """The C-STORE-RSP command set (PS3.7 9.3.1.2, Table 9.3-2), Implicit VR Little Endian."""
    elements = b"".join([
        _command_element(0x0002, "UI", _uid(primitive.AffectedSOPClassUID)),
        _command_element(0x0100, "US", struct.pack("<H", 0x8001)),  # Command Field: C-STORE-RSP
        _command_element(0x0120, "US", struct.pack("<H", primitive.MessageIDBeingRespondedTo)),
        _command_element(0x0800, "US", struct.pack("<H", 0x0101)),  # Command Data Set Type: none
        _command_element(0x0900, "US", struct.pack("<H", primitive.Status)),
        _command_element(0x1000, "UI", _uid(primitive.AffectedSOPInstanceUID)),
    ])  # fmt: skip
    return _command_element(0x0000, "UL", struct.pack("<I", len(elements))) + elements


def find_response_command(
    sop_class_uid: object, message_id: int, status: int, *, data_set: bool, comment: str | None = None
) -> bytes:
    """The C-FIND-RSP command set (PS3.7 9.3.2.2, Table 9.3-4), Implicit VR Little Endian."""
    elements = [
        _command_element(0x0002, "UI", _uid(sop_class_uid)),
        _command_element(0x0100, "US", struct.pack("<H", 0x8020)),  # Command Field: C-FIND-RSP
        _command_element(0x0120, "US", struct.pack("<H", message_id)),
        # Command Data Set Type: 0x0101 none, anything else one follows (PS3.7 E.1-1)
        _command_element(0x0800, "US", struct.pack("<H", 0x0001 if data_set else 0x0101)),
        _command_element(0x0900, "US", struct.pack("<H", status)),
    ]  # fmt: skip
    if comment:
        text = str(comment)[:64].encode("ascii", "replace")  # Error Comment, LO (PS3.7 C.4)
        elements.append(_command_element(0x0902, "LO", text))
    encoded = b"".join(elements)
    return _command_element(0x0000, "UL", struct.pack("<I", len(encoded))) + encoded


def store_refusal_command(
    message_id: int,
    status: int,
    comment: str,
    *,
    sop_class_uid: object = None,
    sop_instance_uid: object = None,
) -> bytes:
    """A C-STORE-RSP failure with its Error Comment (PS3.7 9.3.1.2, Table 9.3-2; C.4.2) for a
    request whose command set pynetdicom could not make a primitive of. The Affected SOP Class
    and Instance UIDs are optional in a response: left out unless they are UIDs (PS3.5 9.1)."""
    text = error_comment(comment).encode("ascii")
    elements = [
        _command_element(0x0002, "UI", _uid(sop_class_uid)) if is_uid(sop_class_uid) else b"",
        _command_element(0x0100, "US", struct.pack("<H", 0x8001)),  # Command Field: C-STORE-RSP
        _command_element(0x0120, "US", struct.pack("<H", message_id)),
        _command_element(0x0800, "US", struct.pack("<H", 0x0101)),  # Command Data Set Type: none
        _command_element(0x0900, "US", struct.pack("<H", status)),
        _command_element(0x0902, "LO", text),  # Error Comment
        _command_element(0x1000, "UI", _uid(sop_instance_uid)) if is_uid(sop_instance_uid) else b"",
    ]  # fmt: skip
    encoded = b"".join(elements)
    return _command_element(0x0000, "UL", struct.pack("<I", len(encoded))) + encoded


def message_send(
    dimse: DIMSEServiceProvider, context_id: int, command: bytes, data_set: BytesLike | None = None
) -> None:
    """One DIMSE message as P-DATA-TF PDUs: the command's fragments, then the data set's (PS3.7
    E.2: control header bit 0 command, bit 1 last fragment), as many PDVs to a PDU as the
    peer's maximum PDU length holds (PS3.8 9.3.5 and D.1: it counts each PDV item's 6-byte
    header; 0 means no limit)."""
    limit = dimse.maximum_pdu_size
    room = max(1, limit - 6) if limit else max(len(command), len(data_set or b""), 1)
    fragments = _fragments(command, room, 0x01)
    if data_set is not None:
        fragments += _fragments(data_set, room, 0x00)
    pdata, size = P_DATA(), 0
    for fragment in fragments:
        if limit and pdata.presentation_data_value_list and size + 6 + len(fragment) - 1 > limit:
            dimse.dul.send_pdu(pdata)
            pdata, size = P_DATA(), 0
        pdata.presentation_data_value_list.append((context_id, fragment))
        size += 6 + len(fragment) - 1  # the fragment carries its control header byte
    dimse.dul.send_pdu(pdata)


def _fragments(data: BytesLike, room: int, kind: int) -> list[bytes]:
    """``data`` in pieces of at most ``room`` bytes, each behind its message control header."""
    pieces = [data[at : at + room] for at in range(0, len(data), room)] or [b""]
    return [bytes([kind | (0x02 if n == len(pieces) - 1 else 0)]) + piece for n, piece in enumerate(pieces)]


def _uid(value: object) -> bytes:
    return str(value).encode("ascii")


def _command_element(element: int, vr: str, value: bytes) -> bytes:
    """A command element: group 0000, Implicit VR Little Endian (PS3.7 6.3.1)."""
    return element_encode(element, vr, value, implicit_vr=True)


def store_request_command(
    sop_class_uid: str,
    sop_instance_uid: str,
    message_id: int,
    *,
    originator_aet: str | None = None,
    originator_id: int | None = None,
) -> bytes:
    """The C-STORE-RQ command set (PS3.7 9.3.1.1, Table 9.3-1), Implicit VR Little Endian; a
    C-MOVE's sub-operation names who asked for the move and which request (PS3.7 9.1.1.1)."""
    elements = [
        _command_element(0x0002, "UI", _uid(sop_class_uid)),
        _command_element(0x0100, "US", struct.pack("<H", 0x0001)),  # Command Field: C-STORE-RQ
        _command_element(0x0110, "US", struct.pack("<H", message_id)),
        _command_element(0x0700, "US", struct.pack("<H", 0x0000)),  # Priority: medium
        _command_element(0x0800, "US", struct.pack("<H", 0x0001)),  # Command Data Set Type: one follows
        _command_element(0x1000, "UI", _uid(sop_instance_uid)),
    ]  # fmt: skip
    if originator_aet is not None and originator_id is not None:
        elements.append(_command_element(0x1030, "AE", originator_aet.strip().encode("ascii")))
        elements.append(_command_element(0x1031, "US", struct.pack("<H", originator_id)))
    encoded = b"".join(elements)
    return _command_element(0x0000, "UL", struct.pack("<I", len(encoded))) + encoded


# Command Field of the responses retrieve_response_command writes (PS3.7 E.1-1).
C_GET_RSP, C_MOVE_RSP = 0x8010, 0x8021


def retrieve_response_command(
    command_field: int,
    sop_class_uid: object,
    message_id: int,
    status: int,
    counts: tuple[int | None, int | None, int | None, int | None],
) -> bytes:
    """A C-GET-RSP or C-MOVE-RSP command set without an identifier (PS3.7 9.3.3.2, 9.3.4.2):
    its status and the Number of Remaining, Completed, Failed and Warning Sub-operations that
    are known (a final response leaves out Remaining, PS3.4 C.4.2.1.4)."""
    elements = [
        _command_element(0x0002, "UI", _uid(sop_class_uid)),
        _command_element(0x0100, "US", struct.pack("<H", command_field)),
        _command_element(0x0120, "US", struct.pack("<H", message_id)),
        _command_element(0x0800, "US", struct.pack("<H", 0x0101)),  # Command Data Set Type: none
        _command_element(0x0900, "US", struct.pack("<H", status)),
    ]  # fmt: skip
    for element, count in zip((0x1020, 0x1021, 0x1022, 0x1023), counts, strict=True):
        if count is not None:
            elements.append(_command_element(element, "US", struct.pack("<H", count)))
    encoded = b"".join(elements)
    return _command_element(0x0000, "UL", struct.pack("<I", len(encoded))) + encoded


def command_read(command: BytesLike) -> dict[int, bytes]:
    """A command set's elements by element number (group 0000, Implicit VR Little Endian, PS3.7
    6.3.1). Raises ValueError if they do not add up to the bytes."""
    elements: dict[int, bytes] = {}
    at, end = 0, len(command)
    while at < end:
        if end - at < 8:
            raise ValueError("a command element cut short")
        group, element, length = struct.unpack_from("<HHL", command, at)
        if group != 0x0000 or at + 8 + length > end:
            raise ValueError(f"not a command element: ({group:04X},{element:04X})")
        elements[element] = bytes(command[at + 8 : at + 8 + length])
        at += 8 + length
    return elements


def p_data_header(context_id: int, control: int, size: int) -> bytes:
    """A P-DATA-TF PDU's header holding one presentation data value item of ``size`` bytes
    (PS3.8 9.3.5: PDU type, reserved, PDU length; the item's length, the presentation context
    ID and the message control header, PS3.8 E.2)."""
    return struct.pack(">BBLLBB", 0x04, 0x00, size + 6, size + 2, context_id, control)
