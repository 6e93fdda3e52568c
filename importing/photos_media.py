"""What a photo or video file is, read from its bytes (never from its name): JPEG (its frame
header, ITU-T T.81 B.2), PNG and HEIC (Pillow; pillow-heif, requirements/base.txt), MP4 (the ISO base
media file format boxes, ISO/IEC 14496-12, and the H.264 decoder configuration, 14496-15
5.3.3). Only what the DICOM wrapping (photos.py) needs is parsed; nothing is re-encoded
(jpegtran's turn moves a JPEG's coefficients, it does not re-quantise them).
"""

import struct
import subprocess
from dataclasses import dataclass
from io import BytesIO

from PIL import Image


class Unreadable(Exception):
    """A file that cannot be wrapped; the message is for the person who uploaded it."""


# JPEG Start Of Frame markers (T.81 Table B.1): which coding process the image uses.
SOF_BASELINE, SOF_EXTENDED, SOF_PROGRESSIVE = 0xC0, 0xC1, 0xC2
SOF_OTHER = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # lossless, hierarchical, arithmetic
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif"}


def kind_of(data: bytes) -> str:
    """ "jpeg", "png", "heic" or "mp4", by the file's signature."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[4:8] == b"ftyp":
        return "heic" if data[8:12] in HEIF_BRANDS else "mp4"
    raise Unreadable("not a JPEG, PNG, HEIC or MP4 file (its first bytes say so, whatever its name)")


@dataclass
class JpegFrame:
    process: int  # the SOF marker
    bits: int
    rows: int
    columns: int
    components: int
    subsampled: bool  # chroma sampled at a lower horizontal rate than luma (4:2:2 or 4:2:0)
    adobe_transform: int | None  # APP14 "Adobe" colour transform: 0 = none (RGB or CMYK)


def jpeg_frame(data: bytes) -> JpegFrame:
    """The frame header of a JPEG (T.81 B.2.2), after checking that the file ends with EOI and
    that every segment before the scan is whole."""
    if data[-2:] != b"\xff\xd9":
        raise Unreadable("the JPEG is cut off (it does not end with its End Of Image marker)")
    at, adobe, frame = 2, None, None
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise Unreadable("the JPEG is damaged (a segment does not start with a marker)")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte (T.81 B.1.1.2)
            at += 1
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        segment = data[at + 4 : at + 2 + length]
        if len(segment) != length - 2:
            raise Unreadable("the JPEG is cut off inside a header segment")
        if marker == 0xEE and segment[:5] == b"Adobe" and len(segment) >= 12:
            adobe = segment[11]
        if marker in (SOF_BASELINE, SOF_EXTENDED, SOF_PROGRESSIVE) or marker in SOF_OTHER:
            bits, rows, columns, count = struct.unpack(">BHHB", segment[:6])
            factors = [segment[7 + 3 * i] for i in range(count) if 8 + 3 * i < len(segment)]
            horizontal = [f >> 4 for f in factors]
            frame = JpegFrame(marker, bits, rows, columns, count,
                              count == 3 and horizontal[0] > max(horizontal[1:]), adobe)  # fmt: skip
        if marker == 0xDA:  # Start Of Scan: the entropy-coded data follows
            break
        at += 2 + length
    if frame is None:
        raise Unreadable("the JPEG has no frame header")
    frame.adobe_transform = adobe
    return frame


# EXIF Orientation (Exif 2.32 4.6.4, tag 0x0112): the jpegtran transform that makes the image
# upright, and what the Derivation Description says was done (the same as Pillow's
# ImageOps.exif_transpose).
ORIENTATION_TURNS = {
    2: (["-flip", "horizontal"], "mirrored left to right"),
    3: (["-rotate", "180"], "turned 180 degrees"),
    4: (["-flip", "vertical"], "mirrored top to bottom"),
    5: (["-transpose"], "transposed (mirrored across its top-left to bottom-right diagonal)"),
    6: (["-rotate", "90"], "turned 90 degrees clockwise"),
    7: (["-transverse"], "transversed (mirrored across its top-right to bottom-left diagonal)"),
    8: (["-rotate", "270"], "turned 90 degrees anticlockwise"),
}


def jpeg_turned(data: bytes, orientation: int, jpegtran: str) -> bytes | None:
    """The JPEG turned upright in the DCT domain by jpegtran, no decoding or re-quantising
    (``-perfect``: refused when the image's edge blocks would have to be dropped, i.e. a width
    or height that is not a multiple of the MCU), every marker kept (``-copy all``) and its EXIF
    Orientation then set to 1; None when jpegtran is not there or cannot do it perfectly."""
    if not jpegtran or orientation not in ORIENTATION_TURNS:
        return None
    try:
        run = subprocess.run(
            [jpegtran, "-perfect", "-copy", "all", *ORIENTATION_TURNS[orientation][0]],
            input=data, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if run.returncode != 0 or run.stdout[-2:] != b"\xff\xd9":
        return None
    return exif_orientation_upright(run.stdout)


def exif_orientation_upright(data: bytes) -> bytes:
    """The JPEG with the Orientation of its EXIF IFD0 set to 1 (the two bytes of that value
    only, everything else as it was), so that nothing that reads EXIF turns it a second time."""
    try:
        at = 2
        while at + 4 <= len(data) and data[at] == 0xFF and data[at + 1] != 0xDA:
            (length,) = struct.unpack(">H", data[at + 2 : at + 4])
            if data[at + 1] == 0xE1 and data[at + 4 : at + 10] == b"Exif\x00\x00":
                tiff = at + 10  # the TIFF header (TIFF 6.0 section 2): byte order, 42, IFD0 offset
                order = "<" if data[tiff : tiff + 2] == b"II" else ">"
                (ifd,) = struct.unpack(order + "I", data[tiff + 4 : tiff + 8])
                (count,) = struct.unpack(order + "H", data[tiff + ifd : tiff + ifd + 2])
                for i in range(count):
                    entry = tiff + ifd + 2 + 12 * i  # tag, type, count, value (12 bytes)
                    tag, kind = struct.unpack(order + "HH", data[entry : entry + 4])
                    if tag == 0x0112 and kind == 3:  # SHORT, its value in the entry itself
                        return data[: entry + 8] + struct.pack(order + "H", 1) + data[entry + 10 :]
                return data
            at += 2 + length
    except struct.error:
        pass
    return data


def image_decoded(data: bytes, kind: str) -> Image.Image:
    """The whole image decoded (a damaged or cut-off file fails here, not later in a viewer)."""
    if kind == "heic":
        try:
            import pillow_heif  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise Unreadable(
                "HEIC photos cannot be read here (no HEIC decoder is installed): "
                "export them as JPEG on the phone (Settings > Camera > Formats > Most Compatible)"
            ) from None
        pillow_heif.register_heif_opener()
    try:
        image = Image.open(BytesIO(data))
        image.load()
    except Image.DecompressionBombError:
        raise Unreadable(f"the image has more than {Image.MAX_IMAGE_PIXELS} pixels") from None
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError... on bad data
        raise Unreadable(f"the {kind.upper()} cannot be decoded ({error})") from None
    if image.width > 0xFFFF or image.height > 0xFFFF:  # Rows, Columns are US
        raise Unreadable("the image is wider or taller than 65535 pixels")
    return image


@dataclass
class Video:
    profile: int  # AVCProfileIndication (H.264 A.2: 66 baseline, 77 main, 100 high ...)
    constraints: int  # profile_compatibility: the constraint_set flags
    level: int  # AVCLevelIndication, level x 10 (41 = 4.1)
    rows: int
    columns: int
    frames: int
    frame_time_ms: float


CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, body start, body end) of each box in [start, end) (14496-12 4.2)."""
    out, at = [], start
    while at < end:
        if at + 8 > end:
            raise Unreadable("the MP4 is cut off (a box header is incomplete)")
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        header = 8
        if size == 1:
            if at + 16 > end:
                raise Unreadable("the MP4 is cut off (a box header is incomplete)")
            (size,) = struct.unpack(">Q", data[at + 8 : at + 16])
            header = 16
        elif size == 0:  # to the end of the file (or of its parent)
            size = end - at
        if size < header or at + size > end:
            raise Unreadable(
                f"the MP4 is cut off or damaged (its '{kind.decode('latin-1')}' box runs past the end)"
            )
        out.append((kind, at + header, at + size))
        at += size
    return out


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, body, stop in _boxes(data, start, end):
        if found == kind:
            return body, stop
    return None


def mp4_video(data: bytes) -> Video:
    """The H.264 video track of an MP4: profile and level from its avcC, size from the sample
    entry, frame count and duration from mdhd and stts (14496-12 8.4.2, 8.6.1.2)."""
    top = _boxes(data, 0, len(data))
    kinds = [kind for kind, _, _ in top]
    if b"moov" not in kinds or b"mdat" not in kinds:
        raise Unreadable("the MP4 has no movie header or no media data (not a finished recording)")
    moov = next((body, stop) for kind, body, stop in top if kind == b"moov")
    for kind, body, stop in _boxes(data, *moov):
        if kind != b"trak":
            continue
        mdia = _child(data, body, stop, b"mdia")
        hdlr = mdia and _child(data, *mdia, b"hdlr")
        if not mdia or not hdlr or data[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
            continue
        mdhd = _child(data, *mdia, b"mdhd")
        minf = _child(data, *mdia, b"minf")
        stbl = minf and _child(data, *minf, b"stbl")
        stsd = stbl and _child(data, *stbl, b"stsd")
        stts = stbl and _child(data, *stbl, b"stts")
        if not (mdhd and stsd and stts):
            raise Unreadable("the MP4's video track has no timing or sample description")
        version = data[mdhd[0]]
        timescale = struct.unpack(">I", data[mdhd[0] + (20 if version == 1 else 12) :][:4])[0]
        # The first sample entry (after version/flags and entry_count): 'avc1' or 'avc3'.
        entry = _boxes(data, stsd[0] + 8, stsd[1])[0]
        if entry[0] not in (b"avc1", b"avc3"):
            raise Unreadable(
                f"the video is {entry[0].decode('latin-1')}, not H.264: only H.264 (AVC) video can be stored as it is"
            )
        # VisualSampleEntry: 8 bytes SampleEntry, 16 reserved, then width and height (12 8.5.2).
        columns, rows = struct.unpack(">HH", data[entry[1] + 24 : entry[1] + 28])
        avcc = _child(data, entry[1] + 78, entry[2], b"avcC")
        if avcc is None:
            raise Unreadable("the H.264 track has no decoder configuration (avcC)")
        profile, constraints, level = data[avcc[0] + 1], data[avcc[0] + 2], data[avcc[0] + 3]
        (count,) = struct.unpack(">I", data[stts[0] + 4 : stts[0] + 8])
        frames = duration = 0
        for i in range(count):
            samples, delta = struct.unpack(">II", data[stts[0] + 8 + 8 * i : stts[0] + 16 + 8 * i])
            frames, duration = frames + samples, duration + samples * delta
        if not frames or not timescale:
            raise Unreadable("the MP4's video track has no frames")
        return Video(profile, constraints, level, rows, columns, frames, duration / frames / timescale * 1000)
    raise Unreadable("the MP4 has no video track")
