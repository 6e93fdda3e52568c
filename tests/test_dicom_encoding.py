"""encoding.element_encode must write each element exactly as pydicom's own writer does
(pydicom.filewriter.write_data_element), for every VR it knows, Explicit and Implicit VR Little
Endian, with values of odd length where a VR may have them (PS3.5 6.2 padding)."""

import struct

import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.dsutils import encode

from imaging.dicom.records.datasets import EncodedDataset
from imaging.dicom.records.encoding import LONG_VRS, SHORT_VRS, element_encode

TAG = 0x00091001  # a private tag: pydicom writes whatever VR it is given for it


def _code_item_bytes(implicit_vr):
    """A one-item sequence value (PS3.5 7.5.1, defined lengths) written by element_encode."""
    body = element_encode(0x00080100, "SH", b"L1", implicit_vr=implicit_vr) + element_encode(
        0x00080102, "SH", b"VPCS", implicit_vr=implicit_vr
    )
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body


def _code_item():
    item = Dataset()
    item.CodeValue = "L1"
    item.CodingSchemeDesignator = "VPCS"
    return Sequence([item])


# (VR, the value as pydicom holds it, the value bytes element_encode is given, character set)
CASES = [
    ("AE", "DXROOM1", b"DXROOM1", None),  # odd: a space
    ("AS", "003Y", b"003Y", None),
    ("AT", Tag(0x00100010), struct.pack("<HH", 0x0010, 0x0010), None),
    ("CS", "F", b"F", None),
    ("CS", "ISO_IR 192", b"ISO_IR 192", None),
    ("DA", "20261207", b"20261207", None),
    ("DS", "7.5", b"7.5", None),
    ("DT", "20261207093000.5", b"20261207093000.5", None),
    ("FD", 1.25, struct.pack("<d", 1.25), None),
    ("FL", 1.25, struct.pack("<f", 1.25), None),
    ("IS", "42", b"42", None),
    ("LO", "Husten seit zwei Wochen", b"Husten seit zwei Wochen", None),
    ("LO", "Müller & Söhne", "Müller & Söhne".encode(), "ISO_IR 192"),
    ("LT", "Left forelimb, lateral", b"Left forelimb, lateral", None),
    ("OB", b"\x00\x01\x02", b"\x00\x01\x02", None),  # odd: a NUL
    ("OB", b"\x00\x01", b"\x00\x01", None),
    ("OD", b"\x01" * 16, b"\x01" * 16, None),
    ("OF", b"\x02" * 8, b"\x02" * 8, None),
    ("OL", b"\x03" * 8, b"\x03" * 8, None),
    ("OV", b"\x04" * 16, b"\x04" * 16, None),
    ("OW", b"\x05\x06\x07", b"\x05\x06\x07", None),  # odd: a NUL
    ("PN", "Müller^Zoë", "Müller^Zoë".encode(), "ISO_IR 192"),
    ("PN", "Okafor^Ada", b"Okafor^Ada", None),
    ("SH", "VPCS1", b"VPCS1", None),
    ("SL", -7, struct.pack("<l", -7), None),
    ("SQ", None, None, None),  # filled in by the test: one item, both VR encodings
    ("SS", -7, struct.pack("<h", -7), None),
    ("ST", "Sedated", b"Sedated", None),
    ("SV", -7, struct.pack("<q", -7), None),
    ("TM", "093000", b"093000", None),
    ("UC", "A long code", b"A long code", None),
    ("UI", "1.2.840.10008.5.1.4.31", b"1.2.840.10008.5.1.4.31", None),
    ("UI", "1.2.840.10008.1.2", b"1.2.840.10008.1.2", None),  # odd: a NUL
    ("UL", 70000, struct.pack("<L", 70000), None),
    ("UN", b"\x09\x08\x07\x06", b"\x09\x08\x07\x06", None),
    ("UR", "http://example.org/a", b"http://example.org/a", None),
    ("US", 0x8001, struct.pack("<H", 0x8001), None),
    ("UT", "A report text.", b"A report text.", None),
    ("UV", 7, struct.pack("<Q", 7), None),
    ("LO", "", b"", None),  # zero length
]


def pydicom_bytes(vr, value, implicit_vr, character_set):
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = implicit_vr
    write_data_element(fp, DataElement(TAG, vr, value), encodings=[character_set] if character_set else None)
    return fp.getvalue()


@pytest.mark.parametrize("implicit_vr", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize(
    "vr, value, value_bytes, character_set", CASES, ids=[f"{c[0]}-{c[2]!r}"[:40] for c in CASES]
)
def test_it_writes_each_vr_as_pydicom_does(vr, value, value_bytes, character_set, implicit_vr):
    if vr == "SQ":
        value, value_bytes = _code_item(), _code_item_bytes(implicit_vr)
    assert element_encode(TAG, vr, value_bytes, implicit_vr=implicit_vr) == pydicom_bytes(
        vr, value, implicit_vr, character_set
    )


def test_every_vr_it_knows_is_checked_against_pydicom():
    assert {case[0] for case in CASES} == LONG_VRS | SHORT_VRS


def test_an_unknown_vr_is_a_clear_error_under_explicit_vr():
    with pytest.raises(ValueError, match=r"\(0009,1001\): unknown VR 'XX'"):
        element_encode(TAG, "XX", b"ab", implicit_vr=False)


def test_a_value_too_long_for_a_two_byte_length_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(0009,1001\) LO: 70000 bytes do not fit"):
        element_encode(TAG, "LO", b"a" * 70000, implicit_vr=False)
    assert len(element_encode(TAG, "UT", b"a" * 70000, implicit_vr=False)) == 12 + 70000


@pytest.mark.parametrize("implicit_vr", [True, False])
def test_an_encoded_data_set_decodes_only_when_read_and_then_is_its_encoding(implicit_vr):
    """datasets.EncodedDataset: the fast worklist path sends ``encoded`` and never decodes it;
    pynetdicom's own C-FIND service encodes it again, which must give the same bytes."""
    source = Dataset()
    source.SpecificCharacterSet = "ISO_IR 192"
    source.PatientName = "Hartley^Biscuit"
    source.PatientID = "PET-42"
    source.ScheduledProcedureStepSequence = _code_item()
    syntax = ImplicitVRLittleEndian if implicit_vr else ExplicitVRLittleEndian
    encoded = encode(source, implicit_vr, True, False)
    answer = EncodedDataset(encoded, UID(syntax))
    assert answer.__dict__.get("_undecoded") is True and answer.encoded == encoded
    assert answer.PatientName == "Hartley^Biscuit"
    assert "_undecoded" not in answer.__dict__
    assert answer.ScheduledProcedureStepSequence[0].CodeValue == "L1"
    assert encode(EncodedDataset(encoded, UID(syntax)), implicit_vr, True, False) == encoded
    assert len(EncodedDataset(encoded, UID(syntax))) == 4
