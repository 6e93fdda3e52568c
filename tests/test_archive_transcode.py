"""imaging/archive/transcode.py: as stored when the peer accepts it, decompressed otherwise."""

import numpy
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
)

from imaging.archive.transcode import CannotTranscode, dataset_transcoded, instance_path, syntax_choose
from imaging.ingest.storage import object_put


def test_the_stored_syntax_first_then_explicit_then_implicit():
    assert syntax_choose(JPEG2000Lossless, [ExplicitVRLittleEndian, JPEG2000Lossless]) == JPEG2000Lossless
    assert (
        syntax_choose(JPEG2000Lossless, [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
        == ExplicitVRLittleEndian
    )
    assert syntax_choose(JPEG2000Lossless, [ImplicitVRLittleEndian]) == ImplicitVRLittleEndian
    assert syntax_choose(JPEG2000Lossless, [JPEGBaseline8Bit]) is None


@pytest.mark.parametrize(
    "compressed, reference",
    [
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
        ("MR_small_RLE.dcm", "MR_small.dcm"),
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
        ("SC_rgb_rle_2frame.dcm", None),  # multi-frame, colour: against pydicom's own decode
    ],
)
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_a_lossless_object_decompressed_has_the_reference_pixels_and_keeps_its_uid(
    compressed, reference, syntax
):
    path = get_testdata_file(compressed)
    original = dcmread(path)
    dataset = dataset_transcoded(path, syntax)
    assert dataset.file_meta.TransferSyntaxUID == syntax
    assert dataset.SOPInstanceUID == original.SOPInstanceUID
    expected = dcmread(get_testdata_file(reference)).pixel_array if reference else original.pixel_array
    assert numpy.array_equal(dataset.pixel_array, expected)
    assert int(dataset.get("NumberOfFrames", 1)) == int(original.get("NumberOfFrames", 1))


def test_the_stored_syntax_is_left_as_it_is():
    path = get_testdata_file("MR_small_RLE.dcm")
    dataset = dataset_transcoded(path, RLELossless)
    assert dataset.PixelData == dcmread(path).PixelData


def test_a_lossless_compression_we_can_encode_keeps_the_pixels():
    """What a C-GET requestor that accepted only JPEG 2000 lossless or RLE gets (retrieve.py)."""
    path = get_testdata_file("MR_small.dcm")
    for syntax in (JPEG2000Lossless, RLELossless):
        dataset = dataset_transcoded(path, syntax)
        assert dataset.file_meta.TransferSyntaxUID == syntax
        assert numpy.array_equal(dataset.pixel_array, dcmread(path).pixel_array)


def test_compressing_otherwise_or_an_unreadable_object_is_a_clear_error(tmp_path):
    with pytest.raises(CannotTranscode, match="only decompress"):
        dataset_transcoded(get_testdata_file("MR_small.dcm"), JPEGLosslessSV1)  # no encoder
    broken = tmp_path / "broken.dcm"
    data = open(get_testdata_file("MR_small_jp2klossless.dcm"), "rb").read()
    broken.write_bytes(data[: len(data) - 2000])  # the codestream cut short
    with pytest.raises(CannotTranscode, match="cannot decode"):
        dataset_transcoded(str(broken), ExplicitVRLittleEndian).pixel_array  # noqa: B018


def test_a_stored_object_is_a_local_file(storage_root):
    data = open(get_testdata_file("MR_small.dcm"), "rb").read()
    key = object_put("dicom/2026/12/07/one.dcm", data)
    with instance_path(key) as path:
        assert open(path, "rb").read() == data
