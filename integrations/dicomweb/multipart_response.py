"""A ``multipart/related`` response (RFC 2387, PS3.18 8.6.1.2) for WADO-RS, streamed part by
part: each part's bytes are sent as they are read, so a study's retrieve never sits in memory
whole. (multipart.py reads STOW-RS request bodies.)"""

import secrets
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from django.http import StreamingHttpResponse


class ResponsePart(NamedTuple):
    content_type: str  # with its parameters: "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    chunks: Iterable[bytes]
    length: int | None = None  # Content-Length of the part, when known before it is read


def _stream(parts: Iterable[ResponsePart], boundary: str) -> Iterator[bytes]:
    # The CRLF before each boundary belongs to the delimiter (RFC 2046 5.1.1).
    for part in parts:
        head = f"--{boundary}\r\nContent-Type: {part.content_type}\r\n"
        if part.length is not None:
            head += f"Content-Length: {part.length}\r\n"
        yield (head + "\r\n").encode("ascii")
        yield from part.chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("ascii")


def multipart_response(parts: Iterable[ResponsePart], media_type: str) -> StreamingHttpResponse:
    """``parts`` (consumed lazily) as ``multipart/related; type="<media_type>"``."""
    boundary = secrets.token_hex(16)
    response = StreamingHttpResponse(
        _stream(parts, boundary),
        content_type=f'multipart/related; type="{media_type}"; boundary={boundary}',
    )
    return response
