"""What a WADO-RS client will take, read from its Accept header (PS3.18 8.7.3 media types and
their ``transfer-syntax`` parameter, 8.7.5 negotiation with ``q`` values): HTTP reading only.

Without a transfer-syntax parameter an instance goes out in Explicit VR Little Endian and pixel
data uncompressed (PS3.18 8.7.3.5.2, Table 8.7.3-2: the default transfer syntaxes); ``*`` asks
for it as stored.
"""

from typing import NamedTuple

from pydicom.uid import UID

EXPLICIT = "1.2.840.10008.1.2.1"  # Explicit VR Little Endian
IMPLICIT = "1.2.840.10008.1.2"
OCTET_STREAM = "application/octet-stream"
ANY = "*/*"

# The media type of a compressed frame in each transfer syntax (PS3.18 Table 8.7.3-5, 8.7.4).
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg", "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg", "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls", "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2", "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx", "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc", "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc", "1.2.840.10008.1.2.5": "image/dicom-rle",
    # Video (PS3.5 8.2.5-8.2.8): the whole bitstream is the one "frame" (PS3.18 8.7.3.3.2).
    "1.2.840.10008.1.2.4.100": "video/mpeg", "1.2.840.10008.1.2.4.101": "video/mpeg",
    "1.2.840.10008.1.2.4.100.1": "video/mpeg", "1.2.840.10008.1.2.4.101.1": "video/mpeg",
    **{f"1.2.840.10008.1.2.4.{n}{f}": "video/mp4" for n in range(102, 107) for f in ("", ".1")},
    "1.2.840.10008.1.2.4.107": "video/h265", "1.2.840.10008.1.2.4.108": "video/h265",
}  # fmt: skip
# The transfer syntax a compressed media type means when it names none (PS3.18 Table 8.7.3-5,
# the defaults), for STOW-RS bulk data parts.
MEDIA_DEFAULT_SYNTAX = {
    "image/jpeg": "1.2.840.10008.1.2.4.70", "image/jls": "1.2.840.10008.1.2.4.80",
    "image/jp2": "1.2.840.10008.1.2.4.90", "image/jpx": "1.2.840.10008.1.2.4.92",
    "image/jphc": "1.2.840.10008.1.2.4.201", "image/dicom-rle": "1.2.840.10008.1.2.5",
    "video/mpeg": "1.2.840.10008.1.2.4.100", "video/mp4": "1.2.840.10008.1.2.4.102",
    "video/h265": "1.2.840.10008.1.2.4.107",
}  # fmt: skip
# Older names clients still send for the same media types (dicomweb-client says video/mpeg2).
MEDIA_ALIASES = {
    "image/x-dicom-rle": "image/dicom-rle",
    "image/x-jls": "image/jls",
    "video/mpeg2": "video/mpeg",
}


class MediaRange(NamedTuple):
    """One entry of the Accept header: a multipart's ``type`` is in ``related``."""

    media_type: str
    related: str | None
    transfer_syntax: str | None
    q: float


def _split(text: str, separator: str) -> list[str]:
    """``text`` cut at ``separator`` outside double quotes."""
    pieces: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return pieces


def media_ranges(header: str) -> list[MediaRange]:
    """The Accept header's entries, the most preferred first (by q, then as written); q=0 ones
    (not acceptable) left out."""
    ranges = []
    for entry in _split(header, ","):
        pieces = _split(entry, ";")
        media_type = pieces[0].strip().lower()
        if not media_type:
            continue
        params = {}
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            params[name.strip().lower()] = value.strip().strip('"').strip()
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        if q <= 0:
            continue
        related = params.get("type")
        related = MEDIA_ALIASES.get(related.lower(), related.lower()) if related else None
        ranges.append(MediaRange(media_type, related, params.get("transfer-syntax") or None, q))
    ranges.sort(key=lambda entry: -entry.q)
    return ranges


def dicom_syntaxes(header: str | None) -> list[str]:
    """The transfer syntaxes in which the client takes ``application/dicom`` parts, its
    preference first (``*``: as stored). Empty: it takes no DICOM objects."""
    if not header:
        return [EXPLICIT]
    syntaxes = []
    for entry in media_ranges(header):
        if entry.media_type == "multipart/related":
            if entry.related not in (None, "application/dicom", "application/*", ANY):
                continue
        elif entry.media_type not in (ANY, "multipart/*", "application/dicom", "application/*"):
            continue
        syntaxes.append(entry.transfer_syntax or EXPLICIT)
    return syntaxes


def default_syntax_taken(header: str | None) -> bool:
    """Whether the client takes ``application/dicom`` parts without naming a transfer syntax
    (no Accept header, or an entry without the parameter): the server's default then, which
    for an object nothing here can decode (a video) is as stored."""
    if not header:
        return True
    return any(
        entry.transfer_syntax is None
        and (
            entry.related in (None, "application/dicom", "application/*", ANY)
            if entry.media_type == "multipart/related"
            else entry.media_type in (ANY, "multipart/*", "application/dicom", "application/*")
        )
        for entry in media_ranges(header)
    )


class PixelChoice(NamedTuple):
    """How pixel data goes out: uncompressed (decoded if need be) or as stored, and the media
    type and transfer syntax each part says it is."""

    uncompressed: bool
    media_type: str
    transfer_syntax: str


def pixel_choice(header: str | None, stored: str, *, decodable: bool) -> PixelChoice | None:
    """The first of the client's choices that can be made for pixel data stored in ``stored``
    (``decodable``: it can be decompressed here); None if none can."""
    stored_media = FRAME_MEDIA_TYPES.get(stored)
    native = not UID(stored).is_compressed
    for entry in media_ranges(header) if header else [MediaRange(ANY, None, None, 1.0)]:
        wanted = entry.related if entry.media_type == "multipart/related" else entry.media_type
        wanted = MEDIA_ALIASES.get(wanted or ANY, wanted or ANY)
        syntax = entry.transfer_syntax
        if wanted in (OCTET_STREAM, ANY, "application/*", "multipart/*"):
            if syntax is None or syntax in (EXPLICIT, IMPLICIT):
                if native or decodable:
                    return PixelChoice(True, OCTET_STREAM, syntax or EXPLICIT)
                if syntax is None and wanted in (ANY, "multipart/*") and stored_media:
                    # Any media type, and it cannot be decoded here (a video): as stored.
                    return PixelChoice(False, stored_media, stored)
            elif syntax in ("*", stored):
                # As stored: a compressed frame with its own media type, unless the client asked
                # for octet-stream by name (PS3.18 8.7.3.3.2: any syntax in an octet-stream part).
                media = stored_media if stored_media and wanted != OCTET_STREAM else OCTET_STREAM
                return PixelChoice(native, media, stored)
            continue
        if stored_media is None or syntax not in (None, "*", stored):
            continue
        if wanted == stored_media or (
            wanted in ("image/*", "video/*") and stored_media.startswith(wanted[:-1])
        ):
            return PixelChoice(False, stored_media, stored)
    return None
