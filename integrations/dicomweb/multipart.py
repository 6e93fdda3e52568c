"""A multipart/related body read as it arrives (RFC 2387, with the multipart syntax of RFC 2046
5.1.1), for STOW-RS (PS3.18 8.6.1.2): each part's headers, then its body in pieces, never the
whole body (nor a whole part) in memory. No sockets, no Django: ``parts_read`` takes anything
with ``read(n)``.

The body is: a preamble (ignored), then for each part a delimiter line ``--boundary``, the
part's headers, an empty line and its content; then ``--boundary--`` and an epilogue (ignored).
A delimiter is only ever found at the start of a line, so what ends a part is CRLF + ``--`` +
the boundary, and no part's content can contain that sequence.
"""

from collections.abc import Iterator
from typing import Protocol

from django.utils.http import parse_header_parameters

PIECE = 1 << 20  # read this much at a time
HEADERS_MOST = 16 * 1024  # a part's headers, all of them: a few lines
PREAMBLE_MOST = 64 * 1024  # what comes before the first delimiter is ignored, but not without end


class Malformed(ValueError):
    """Not a multipart body this boundary delimits: the request is bad (400)."""


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def content_type_parse(value: str) -> tuple[str, dict[str, str]]:
    """``multipart/related; type="application/dicom"; boundary=x`` -> the media type
    (lower case) and its parameters (names in lower case, values unquoted)."""
    media_type, parameters = parse_header_parameters(value)
    return media_type.strip().lower(), parameters


def boundary_check(boundary: str | None) -> bytes:
    """The boundary as bytes: 1 to 70 characters (RFC 2046 5.1.1), printable ASCII."""
    if not boundary or len(boundary) > 70 or not boundary.isascii() or not boundary.isprintable():
        raise Malformed("The Content-Type has no valid boundary parameter (RFC 2046 5.1.1)")
    return boundary.encode("ascii")


class Part:
    """One body part: its ``headers`` (names in lower case) and ``pieces()``, its content in
    pieces as it arrives. The pieces must be read, or not, before the next part is asked for:
    what is left unread is skipped."""

    def __init__(self, reader: "_Reader", headers: dict[str, str]) -> None:
        self.headers = headers
        self._reader = reader
        self.done = False

    @property
    def content_type(self) -> str:
        return content_type_parse(self.headers.get("content-type", ""))[0]

    def pieces(self) -> Iterator[bytes]:
        while not self.done:
            piece, self.done = self._reader.content_piece()
            if piece:
                yield piece

    def skip(self) -> None:
        for _ in self.pieces():
            pass


def parts_read(stream: Readable, boundary: bytes, piece: int = PIECE) -> Iterator[Part]:
    """The parts of the multipart body ``stream`` holds, in order. Raises Malformed for a body
    that is not one (no delimiter, cut off before the close delimiter, headers too long)."""
    reader = _Reader(stream, boundary, piece)
    reader.first_delimiter()
    while reader.after_delimiter():
        part = Part(reader, reader.headers())
        yield part
        part.skip()


class _Reader:
    def __init__(self, stream: Readable, boundary: bytes, piece: int) -> None:
        self.stream, self.piece = stream, piece
        self.delimiter = b"\r\n--" + boundary
        # As if a line ended before the body: the first delimiter may be its very first line.
        self.buffer = bytearray(b"\r\n")
        self.eof = False

    def fill(self) -> bool:
        """Read more into the buffer; False at the end of the body."""
        if self.eof:
            return False
        data = self.stream.read(self.piece)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def first_delimiter(self) -> None:
        skipped = 0
        while (at := self.buffer.find(self.delimiter)) < 0:
            keep = len(self.delimiter) - 1
            if len(self.buffer) > keep:
                skipped += len(self.buffer) - keep
                del self.buffer[: len(self.buffer) - keep]
            if skipped > PREAMBLE_MOST or not self.fill():
                raise Malformed("The body has no delimiter of the boundary the Content-Type names")
        del self.buffer[: at + len(self.delimiter)]

    def after_delimiter(self) -> bool:
        """After a delimiter: True if a part follows (the rest of its line is read), False if
        it was the close delimiter (``--``; the epilogue is not read)."""
        while len(self.buffer) < 2 and self.fill():
            pass
        if self.buffer[:2] == b"--":
            return False
        # Transport padding (spaces, tabs) may follow a delimiter before its line ends.
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > 1024 or not self.fill():
                raise Malformed("A boundary delimiter line does not end (RFC 2046 5.1.1)")
        if self.buffer[:end].strip(b" \t"):
            raise Malformed("A boundary delimiter is followed by other text on its line")
        del self.buffer[: end + 2]
        return True

    def headers(self) -> dict[str, str]:
        """A part's header lines up to the empty line, which may come at once (no headers)."""
        while True:
            if self.buffer[:2] == b"\r\n":
                block, rest = b"", 2
                break
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                block, rest = bytes(self.buffer[:end]), end + 4
                break
            if len(self.buffer) > HEADERS_MOST:
                raise Malformed(f"A part's headers are over {HEADERS_MOST} bytes")
            if not self.fill():
                raise Malformed("The body ends in a part's headers")
        del self.buffer[:rest]
        headers: dict[str, str] = {}
        for line in block.decode("latin-1").split("\r\n") if block else []:
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise Malformed(f"Not a header line in a part: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        return headers

    def content_piece(self) -> tuple[bytes, bool]:
        """The next piece of the current part's content, and whether the part ended with it
        (its delimiter read, the buffer after it)."""
        while True:
            at = self.buffer.find(self.delimiter)
            if at >= 0:
                piece = bytes(self.buffer[:at])
                del self.buffer[: at + len(self.delimiter)]
                return piece, True
            # All but what could be the start of a delimiter cut by the read.
            safe = len(self.buffer) - (len(self.delimiter) - 1)
            if safe >= self.piece or (safe > 0 and self.eof):
                piece = bytes(self.buffer[:safe])
                del self.buffer[:safe]
                return piece, False
            if not self.fill():
                raise Malformed("The body ends before the close delimiter (cut off)")
