"""integrations/dicomweb/accept.py: what a WADO-RS client's Accept header asks for."""

from integrations.dicomweb.accept import EXPLICIT, PixelChoice, dicom_syntaxes, pixel_choice

JP2 = "1.2.840.10008.1.2.4.90"


def test_dicom_objects_default_to_explicit_little_endian_and_follow_q():
    assert dicom_syntaxes(None) == [EXPLICIT]  # PS3.18 8.7.3.5.2
    assert dicom_syntaxes('multipart/related; type="application/dicom"') == [EXPLICIT]
    header = (
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1; q=0.5, '
        "multipart/related; type=application/dicom; transfer-syntax=*"
    )
    assert dicom_syntaxes(header) == ["*", EXPLICIT]
    assert dicom_syntaxes('multipart/related; type="image/jpeg", text/html') == []
    assert dicom_syntaxes("*/*; q=0, multipart/related; type=application/dicom; transfer-syntax=*") == ["*"]


def test_pixel_data_uncompressed_unless_the_stored_type_or_any_syntax_is_asked_for():
    assert pixel_choice(None, JP2, decodable=True) == PixelChoice(True, "application/octet-stream", EXPLICIT)
    assert pixel_choice('multipart/related; type="image/jp2"', JP2, decodable=True) == PixelChoice(
        False, "image/jp2", JP2
    )
    stored_as_octets = "multipart/related; type=application/octet-stream; transfer-syntax=*"
    assert pixel_choice(stored_as_octets, JP2, decodable=False) == PixelChoice(
        False, "application/octet-stream", JP2
    )
    assert pixel_choice(
        'multipart/related; type="*/*"; transfer-syntax=*', JP2, decodable=True
    ) == PixelChoice(False, "image/jp2", JP2)
    # Cannot decode it here and the client takes only uncompressed, or another compressed type.
    assert pixel_choice("multipart/related; type=application/octet-stream", JP2, decodable=False) is None
    assert pixel_choice('multipart/related; type="image/jpeg"', JP2, decodable=True) is None
    assert pixel_choice(
        "multipart/related; type=image/x-dicom-rle", "1.2.840.10008.1.2.5", decodable=True
    ) == (PixelChoice(False, "image/dicom-rle", "1.2.840.10008.1.2.5"))
