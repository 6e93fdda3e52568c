"""The multipart/related reader of STOW-RS (integrations/dicomweb/multipart.py), without sockets:
parts found whatever the reads cut, content never mistaken for a delimiter, bad bodies refused."""

import io

import pytest

from integrations.dicomweb.multipart import Malformed, content_type_parse, parts_read

BOUNDARY = b"a1b2c3"
# Content that looks like a delimiter without being one (no CRLF before it), and CRLFs.
# (A sender picks a boundary that its content never holds after a CRLF, RFC 2046 5.1.1.)
TRICKY = b"\r\n-a1b2c3\r\n\r\nx--a1b2c3--\r\n" + bytes(range(256)) * 3 + b"\r\n--a1b2c"


class Trickle(io.BytesIO):
    """A stream that never gives more than ``most`` bytes a read, as a socket may."""

    def __init__(self, data, most):
        super().__init__(data)
        self.most = most

    def read(self, size=-1):
        return super().read(min(self.most, size if size >= 0 else self.most))


def body(*contents, preamble=b"", epilogue=b"", padding=b""):
    out = preamble
    for n, content in enumerate(contents):
        out += (b"\r\n" if out else b"") + b"--" + BOUNDARY + padding + b"\r\n"
        out += b"Content-Type: application/dicom\r\nX-Part: %d\r\n\r\n" % n + content
    return out + b"\r\n--" + BOUNDARY + b"--" + epilogue


def read_all(stream, piece=1 << 20):
    return [(part.headers, b"".join(part.pieces())) for part in parts_read(stream, BOUNDARY, piece)]


@pytest.mark.parametrize("most", [1, 2, 7, len(BOUNDARY) + 3, len(BOUNDARY) + 4, 100, 1 << 20])
def test_parts_come_out_whole_however_the_reads_cut_the_body(most):
    contents = [TRICKY, b"", b"D" * 5000, TRICKY[::-1]]
    parts = read_all(Trickle(body(*contents), most), piece=64)
    assert [content for _headers, content in parts] == contents
    assert [headers["x-part"] for headers, _content in parts] == ["0", "1", "2", "3"]
    assert parts[0][0]["content-type"] == "application/dicom"


def test_preamble_epilogue_and_transport_padding_are_ignored():
    data = body(b"one", b"two", preamble=b"This is a preamble.", epilogue=b"\r\nan epilogue", padding=b" \t ")
    assert [content for _headers, content in read_all(io.BytesIO(data))] == [b"one", b"two"]


def test_a_part_without_headers_and_parts_left_unread_are_skipped_cleanly():
    data = b"--a1b2c3\r\n\r\nfirst\r\n--a1b2c3\r\nA: b\r\n\r\nsecond\r\n--a1b2c3--"
    parts = parts_read(io.BytesIO(data), BOUNDARY, 2)
    first = next(parts)
    assert first.headers == {}
    second = next(parts)  # the first's content was never read
    assert (second.headers, b"".join(second.pieces())) == ({"a": "b"}, b"second")
    assert list(parts) == []


def test_content_is_given_in_pieces_never_the_whole_part():
    big = b"\x00" * (5 << 20)
    part = next(parts_read(io.BytesIO(body(big)), BOUNDARY, 1 << 20))
    sizes = [len(piece) for piece in part.pieces()]
    assert sum(sizes) == len(big) and max(sizes) <= 2 << 20 and len(sizes) >= 3


@pytest.mark.parametrize(
    "data, message",
    [
        (b"no delimiter at all", "no delimiter"),
        (body(b"cut off")[:-12], "ends before the close delimiter"),
        (b"--a1b2c3\r\nContent-Type: application/dicom", "ends in a part's headers"),
        (b"--a1b2c3 junk\r\n\r\nx\r\n--a1b2c3--", "other text"),
        (b"--a1b2c3\r\nno colon here\r\n\r\nx\r\n--a1b2c3--", "Not a header line"),
        (b"--a1b2c3\r\n" + b"A: " + b"b" * 20_000 + b"\r\n\r\nx\r\n--a1b2c3--", "headers are over"),
    ],
)
def test_a_body_that_is_not_multipart_is_malformed(data, message):
    with pytest.raises(Malformed, match=message):
        read_all(io.BytesIO(data), piece=1024)


def test_the_content_type_is_read_with_its_parameters():
    assert content_type_parse('Multipart/Related; type="application/dicom"; boundary="x y"') == (
        "multipart/related",
        {"type": "application/dicom", "boundary": "x y"},
    )
