"""imaging/archive/dicomjson.py: the DICOM JSON written from a stored object's bytes says what
pydicom reads from the same file, in every encoding, bulk data left as BulkDataURIs; and
bulkdata.py's frames, read from their offsets, are pydicom's pixels."""

import io

import orjson
import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid

from imaging.archive.bulkdata import NoSuchFrame, frames_read
from imaging.archive.dicomjson import BULK_THRESHOLD, Unreadable, part10_document
from imaging.ingest.storage import object_put

FILES = [
    get_testdata_file("CT_small.dcm"),  # explicit, private tags, a 2 KB private OB
    get_testdata_file("MR_small_implicit.dcm"),
    get_testdata_file("MR_small_bigendian.dcm"),
    get_testdata_file("rtdose.dcm"),  # implicit, multi-frame
    get_testdata_file("rtplan.dcm"),  # nested sequences
    get_testdata_file("SC_rgb_rle_2frame.dcm"),
    get_testdata_file("JPEG2000.dcm"),
    get_testdata_file("image_dfl.dcm"),  # deflated
    *get_charset_files("chrH31.dcm"),  # Japanese, ISO 2022 code extensions
    *get_charset_files("chrRuss.dcm"),
    *get_charset_files("chrSQEncoding.dcm"),  # a character set inside a sequence item
]
PIXELS_AND_AFTER = {0x7FE00010}  # (what follows the pixel data is in the document too)


def _bulk_paths(value, path="bulkdata"):
    """The values the document gives as BulkDataURIs: {tag path: uri}."""
    found = {}
    for key, attribute in value.items():
        if "BulkDataURI" in attribute:
            found[f"{path}/{key}"] = attribute["BulkDataURI"]
        for number, item in enumerate(attribute.get("Value", []) if attribute["vr"] == "SQ" else []):
            found.update(_bulk_paths(item, f"{path}/{key}/{number}"))
    return found


def _compare(read, written):
    """Every element pydicom reads equals the document's, bulk data aside (checked apart)."""
    for element in read:
        if element.tag in PIXELS_AND_AFTER or element.tag.element == 0:
            continue
        assert element.tag in written, element
        if element.VR == "SQ":
            assert len(written[element.tag].value) == len(element.value), element
            for ours, theirs in zip(written[element.tag].value, element.value, strict=True):
                _compare(theirs, ours)
        elif written[element.tag].value is not None:  # (bulk data: None from the handler)
            value = element.value
            if element.VR == "CS" and isinstance(value, pydicom.multival.MultiValue):
                value = [part.strip() for part in value]  # CS spaces are insignificant (PS3.5 6.2)
            assert written[element.tag].value == value, element


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.rsplit("/", 1)[-1])
def test_the_document_says_what_pydicom_reads(path):
    data = open(path, "rb").read()
    document = orjson.loads(part10_document(data))
    read = pydicom.dcmread(path)
    written = Dataset.from_json(document, bulk_data_uri_handler=lambda tag, vr, uri: None)
    _compare(read, written)
    assert document["00083002"] == {"vr": "UI", "Value": [read.file_meta.TransferSyntaxUID]}
    if "PixelData" in read:
        assert document["7FE00010"]["BulkDataURI"] == "bulkdata/7FE00010"
    for uri in _bulk_paths(document).values():
        assert uri.startswith("bulkdata/")


def _part10(dataset, syntax=ExplicitVRLittleEndian):
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = syntax
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID = generate_uid()
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_binary_values_over_the_threshold_are_bulk_data_wherever_they_are():
    dataset = Dataset()
    dataset.PatientName = "Hartley^Biscuit"
    item = Dataset()
    item.EncapsulatedDocument = b"\x01" * (BULK_THRESHOLD + 2)
    item.MIMETypeOfEncapsulatedDocument = "application/pdf"
    small = Dataset()
    small.EncapsulatedDocument = b"\x02\x03"
    dataset.ContentSequence = Sequence([item, small])
    document = orjson.loads(part10_document(_part10(dataset)))
    items = document["0040A730"]["Value"]
    assert items[0]["00420011"] == {"vr": "OB", "BulkDataURI": "bulkdata/0040A730/0/00420011"}
    assert items[1]["00420011"] == {"vr": "OB", "InlineBinary": "AgM="}
    assert document["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Hartley^Biscuit"}]}


def test_a_deflated_object_is_read_inflated():
    dataset = Dataset()
    dataset.StudyDescription = "Thorax " * 20
    raw = _part10(dataset, DeflatedExplicitVRLittleEndian)
    assert b"Thorax Thorax" not in raw  # (it really is deflated)
    assert orjson.loads(part10_document(raw))["00081030"]["Value"] == [("Thorax " * 20).strip()]


def test_a_cut_off_object_is_unreadable_not_a_half_document():
    data = open(get_testdata_file("rtplan.dcm"), "rb").read()
    with pytest.raises(Unreadable):
        part10_document(data[: len(data) // 2])


@pytest.mark.parametrize(
    "name", ["rtdose.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm", "SC_rgb_rle_2frame.dcm", "MR_small.dcm"]
)
def test_uncompressed_frames_from_the_file_are_pydicoms_pixels(storage_root, name):
    """bulkdata.frames_read: read at their offsets (little endian), else decoded by pydicom."""
    key = object_put(f"dicom/2026/12/07/{name}", open(get_testdata_file(name), "rb").read())
    pixels = pydicom.dcmread(get_testdata_file(name)).pixel_array
    count = int(pydicom.dcmread(get_testdata_file(name)).get("NumberOfFrames") or 1)
    frames = list(frames_read(key, None, uncompressed=True))
    expected = [pixels[n] for n in range(count)] if count > 1 else [pixels]
    assert frames == [frame.astype(frame.dtype.newbyteorder("<")).tobytes() for frame in expected]
    with pytest.raises(NoSuchFrame, match=f"Frame {count + 1} is out of range"):
        frames_read(key, [1, count + 1], uncompressed=True)


@pytest.mark.parametrize("has_bot", [True, False], ids=["basic offset table", "empty offset table"])
def test_attributes_after_encapsulated_pixel_data_are_in_the_document(has_bot):
    dataset = Dataset()
    dataset.Rows, dataset.Columns, dataset.NumberOfFrames = 8, 8, 3
    frames = [bytes([n]) * 30 + b"\xfe\xff\xdd\xe0" for n in range(3)]  # a delimiter's bytes inside a frame
    dataset.PixelData = encapsulate(frames, fragments_per_frame=2, has_bot=has_bot)
    dataset["PixelData"].VR = "OB"
    dataset.add_new(0x7FE10010, "LO", "ACME VET")
    dataset.add_new(0x7FE11002, "LO", "after the pixels")
    dataset.add_new(0xFFFCFFFC, "OB", b"\x00" * 4)
    document = orjson.loads(part10_document(_part10(dataset, "1.2.840.10008.1.2.4.90")))
    assert document["7FE00010"] == {"vr": "OB", "BulkDataURI": "bulkdata/7FE00010"}
    assert document["7FE11002"] == {"vr": "LO", "Value": ["after the pixels"]}
    assert document["FFFCFFFC"] == {"vr": "OB", "InlineBinary": "AAAAAA=="}
