"""Pixels into pictures: a frame of a stored object rendered as a JPEG, PNG or GIF, the one
implementation behind WADO-RS ``/rendered`` and ``/thumbnail`` (PS3.18 10.4.1.1.3, 10.4.1.1.4)
and the study page's series thumbnails (imaging/ingest/thumbnails.py).

The grayscale pipeline is the one PS3.3 C.7.6.1.1 and C.11 describe, with pydicom's own helpers:
stored values -> Modality LUT (rescale, C.11.1) -> VOI LUT (a window, C.11.2.1.2, or a VOI LUT
table) into 0..255 -> inverted for MONOCHROME1 (C.7.6.3.1.2: the minimum is white). The window is
the request's, else the object's first Window Center/Width with its VOI LUT Function (an enhanced
multi-frame object's are the frame's own: its Frame VOI LUT in the Per-frame or Shared Functional
Groups, PS3.3 C.7.6.16.2.10, as its rescale is the frame's Pixel Value Transformation), else its
VOI LUT Sequence, else the frame's own minimum to maximum. Colour (RGB, and YBR decoded to RGB)
is not windowed (a VOI LUT applies to grayscale only, C.11.2); PALETTE COLOR goes through its
palette (C.7.6.3.1.5).

Speed: only the named frame is decoded (``pixel_array(path, index=...)`` reads the header and
that frame's bytes, not the whole object), and for integer data the pipeline is computed once
per stored value between the frame's minimum and maximum, then looked up per pixel: a 512x512
CT frame costs one table of a few thousand entries instead of floating-point work on 262,144
pixels.
"""

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.pixels.processing import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi_lut,
    apply_windowing,
)
from pydicom.pixels.utils import pixel_array  # where it is defined (no __all__ in pydicom.pixels)

JPEG, PNG, GIF = "image/jpeg", "image/png", "image/gif"
MEDIA_TYPES = (JPEG, PNG, GIF)  # PS3.18 8.7.4 rendered media types we produce; JPEG the default
DEFAULT_QUALITY = 90  # PS3.18 8.3.5.1.2 leaves the default to the origin server; Orthanc's too
THUMBNAIL_SIZE = 192  # the study page's series thumbnails, and /thumbnail without a viewport
# PS3.3 C.11.2.1.2 VOI LUT Function values.
LINEAR, LINEAR_EXACT, SIGMOID = "LINEAR", "LINEAR_EXACT", "SIGMOID"
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT")


class CannotRender(Exception):
    """The object has no pixel data we can draw (a report, a waveform), or it cannot be decoded
    (no decoder for its transfer syntax, corrupt): the message says which."""


@dataclass(frozen=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2): centre and width in modality units (after rescale)."""

    center: float
    width: float
    function: str = LINEAR

    def problem(self) -> str | None:
        """Why this window cannot be applied, or None (PS3.3 C.11.2.1.2.1, C.11.2.1.3)."""
        if self.function not in (LINEAR, LINEAR_EXACT, SIGMOID):
            return f"the function must be linear, linear-exact or sigmoid, not {self.function!r}"
        if self.function == LINEAR and self.width < 1:
            return "a linear window's width must be at least 1"
        if self.width <= 0:
            return "the width must be greater than 0"
        return None


@dataclass(frozen=True)
class Viewport:
    """PS3.18 8.3.5.1.3: the picture fits a ``width`` x ``height`` box, its aspect ratio kept;
    optionally only the source region from (``sx``, ``sy``) of ``sw`` x ``sh`` pixels (a
    negative ``sw`` or ``sh`` flips that axis; None: to the image's edge)."""

    width: int
    height: int
    sx: int = 0
    sy: int = 0
    sw: int | None = None
    sh: int | None = None


@dataclass(frozen=True)
class Rendering:
    """How to draw: the parameters of a Retrieve Rendered request (PS3.18 8.3.5.1)."""

    window: Window | None = None
    viewport: Viewport | None = None
    quality: int = DEFAULT_QUALITY
    # Without a viewport: as large as the source (False), or within a thumbnail's box, never
    # enlarged (True).
    thumbnail: bool = False


def frames_decode(path: str, numbers: Sequence[int]) -> tuple[Dataset, list[NDArray[Any]]]:
    """The header and the named frames (numbered from 1, within the object's Number of Frames:
    the caller checks against the index) of the object at ``path``; only those frames are
    decoded. Raises CannotRender."""
    frames: list[NDArray[Any]] = []
    try:
        # The header without the pixel data, then each frame alone: pixel_array reads only that
        # frame's bytes. (pixel_array's own ds_out costs more: it looks up each element among
        # the 182 of group 0028 in a list.)
        header = dcmread(path, stop_before_pixels=True)
        for number in numbers:
            frames.append(pixel_array(path, index=number - 1))
    except AttributeError as error:  # pydicom: no Pixel Data element, or no transfer syntax
        raise CannotRender(f"the instance has no pixel data to render ({error})") from error
    except Exception as error:  # the decoders' errors are many; each says what failed
        raise CannotRender(f"cannot decode the pixel data: {error}") from error
    return header, frames


def frame_picture(header: Dataset, pixels: NDArray[Any], rendering: Rendering) -> Image.Image:
    """One decoded frame drawn as an 8-bit grayscale or RGB picture, cropped and scaled as the
    rendering's viewport says."""
    pixels = _region(pixels, rendering.viewport)
    if pixels.size == 0:
        raise CannotRender("the viewport's source region lies outside the image")
    photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2"))
    try:
        if photometric == "PALETTE COLOR":
            # PS3.3 C.7.6.3.1.5: 8 or 16 bits per entry, as the palette's descriptor says.
            rgb = apply_color_lut(pixels, header)
            picture = Image.fromarray(_to_8bit(rgb, 16 if rgb.dtype == np.uint16 else 8))
        elif photometric in COLOUR or pixels.ndim == 3:
            picture = Image.fromarray(_to_8bit(pixels, int(header.get("BitsStored") or 8)))
        else:
            picture = Image.fromarray(grey_display(header, pixels, rendering.window))
    except CannotRender:
        raise
    except Exception as error:  # a malformed LUT or window in the header
        raise CannotRender(f"cannot apply the object's lookup tables: {error}") from error
    return _scaled(picture, rendering)


def grey_display(header: Dataset, pixels: NDArray[Any], window: Window | None) -> NDArray[np.uint8]:
    """A grayscale frame through the Modality LUT, the VOI LUT into 0..255 and MONOCHROME1's
    inversion (see the module's docstring)."""
    if pixels.dtype.kind in "iu" and pixels.dtype.itemsize <= 2:
        # The same pipeline over each stored value in the frame's range, then a lookup. The
        # index, stored value - minimum, is computed in the unsigned type of the same size: it
        # wraps to the right value (0 .. max - min < 2^bits) without a wider copy of the frame.
        low, high = int(pixels.min()), int(pixels.max())
        table = _grey_pipeline(header, np.arange(low, high + 1).astype(pixels.dtype), window)
        unsigned = np.dtype(f"u{pixels.dtype.itemsize}")
        index = pixels.view(unsigned) - np.array(low, dtype=pixels.dtype).view(unsigned)
        looked_up: NDArray[np.uint8] = np.take(table, index)
        return looked_up
    return _grey_pipeline(header, pixels, window)


def _grey_pipeline(header: Dataset, values: NDArray[Any], window: Window | None) -> NDArray[np.uint8]:
    modality = apply_modality_lut(values, header)  # PS3.3 C.11.1: rescale or Modality LUT
    window = window or object_window(header)
    if window is None and header.get("VOILUTSequence"):
        # PS3.3 C.11.2.1.1: a VOI LUT table, its output 0 .. 2^bits - 1 (LUT Descriptor's third value).
        bits = int(header.VOILUTSequence[0].LUTDescriptor[2])
        display = apply_voi_lut(modality, header, prefer_lut=True).astype(np.float64)
        display *= 255 / (2**bits - 1)
    else:
        if window is None:  # nothing says how to look at it: the whole range (Orthanc does this too)
            low, high = float(modality.min()), float(modality.max())
            window = Window((low + high) / 2, max(high - low, 1e-6), LINEAR_EXACT)
        display = apply_windowing(modality, _display_window(window))
    if header.get("PhotometricInterpretation") == "MONOCHROME1":
        display = 255 - display  # PS3.3 C.7.6.3.1.2: the minimum is white
    return np.clip(np.rint(display), 0, 255).astype(np.uint8)


def object_window(header: Dataset) -> Window | None:
    """The object's own first window (PS3.3 C.11.2.1.2: the first is the default), if it has a
    usable one."""
    if "WindowCenter" not in header or "WindowWidth" not in header:
        return None
    try:
        center, width = (_first(header[keyword].value) for keyword in ("WindowCenter", "WindowWidth"))
        window = Window(center, width, str(header.get("VOILUTFunction") or LINEAR).upper())
    except (TypeError, ValueError, IndexError):
        return None
    return None if window.problem() else window


def _first(value: Any) -> float:
    """A DS value of VM 1, or the first of several (pydicom gives a MultiValue)."""
    return float(value[0] if isinstance(value, Sequence) and not isinstance(value, str) else value)


def _display_window(window: Window) -> Dataset:
    """The window as a VOI LUT module of an unsigned 8-bit image without rescale, so that
    pydicom's apply_windowing maps into 0..255 (its y_min..y_max, PS3.3 C.11.2.1.2.1)."""
    display = Dataset()
    display.PhotometricInterpretation = "MONOCHROME2"
    display.BitsStored, display.PixelRepresentation = 8, 0
    display.WindowCenter, display.WindowWidth = window.center, window.width
    display.VOILUTFunction = window.function
    return display


def _to_8bit(pixels: NDArray[Any], bits: int) -> NDArray[np.uint8]:
    if pixels.dtype == np.uint8 or bits <= 8:
        return pixels.astype(np.uint8, copy=False)
    scaled: NDArray[np.uint8] = np.rint(pixels / (2**bits - 1) * 255).astype(np.uint8)
    return scaled


def _region(pixels: NDArray[Any], viewport: Viewport | None) -> NDArray[Any]:
    """The viewport's source region (PS3.18 8.3.5.1.3), clipped to the image, flipped where its
    width or height is negative."""
    if viewport is None:
        return pixels
    rows, columns = pixels.shape[:2]
    sw = columns - viewport.sx if viewport.sw is None else viewport.sw
    sh = rows - viewport.sy if viewport.sh is None else viewport.sh
    region = pixels[viewport.sy : viewport.sy + abs(sh), viewport.sx : viewport.sx + abs(sw)]
    if sw < 0:
        region = region[:, ::-1]
    if sh < 0:
        region = region[::-1]
    return np.ascontiguousarray(region)


def _scaled(picture: Image.Image, rendering: Rendering) -> Image.Image:
    """Fitted to the viewport (enlarged or reduced), or to the thumbnail box (only reduced),
    the aspect ratio kept (PS3.18 8.3.5.1.3)."""
    if rendering.viewport is not None:
        box = (rendering.viewport.width, rendering.viewport.height)
    elif rendering.thumbnail:
        box = (min(THUMBNAIL_SIZE, picture.width), min(THUMBNAIL_SIZE, picture.height))
    else:
        return picture
    ratio = min(box[0] / picture.width, box[1] / picture.height)
    size = (max(1, round(picture.width * ratio)), max(1, round(picture.height * ratio)))
    if size == picture.size:
        return picture
    return picture.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def pictures_encode(
    pictures: Sequence[Image.Image], media_type: str, quality: int = DEFAULT_QUALITY
) -> bytes:
    """One picture as JPEG (``quality``, PS3.18 8.3.5.1.2) or PNG (lossless; quality does not
    apply), or one or more as a GIF (several: an animation, PS3.18 8.7.4's multi-frame type)."""
    out = io.BytesIO()
    first = pictures[0]
    if media_type == JPEG:
        first.save(out, "JPEG", quality=quality)
    elif media_type == PNG:
        first.save(out, "PNG", compress_level=1)  # lossless either way; level 1 is ~5x faster than 6
    elif media_type == GIF:
        first.save(out, "GIF", save_all=len(pictures) > 1, append_images=list(pictures[1:]), loop=0)
    else:
        raise ValueError(f"not a rendered media type we produce: {media_type}")
    return out.getvalue()


def object_rendered(path: str, numbers: Sequence[int], rendering: Rendering, media_type: str) -> bytes:
    """The named frames of the object at ``path`` drawn and encoded as one picture (one frame)
    or one GIF. Raises CannotRender."""
    header, frames = frames_decode(path, numbers)
    return pictures_encode(
        [
            frame_picture(frame_header(header, number), pixels, rendering)
            for number, pixels in zip(numbers, frames, strict=True)
        ],
        media_type,
        rendering.quality,
    )


# What an enhanced multi-frame object's Functional Groups (PS3.3 C.7.6.16) say of one frame,
# put where the single-frame pipeline reads it: the Frame VOI LUT macro (C.7.6.16.2.10, its
# window) and the Pixel Value Transformation macro (C.7.6.16.2.9, its rescale).
FRAME_GROUPS = (
    ("FrameVOILUTSequence", ("WindowCenter", "WindowWidth", "VOILUTFunction")),
    ("PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept", "RescaleType")),
)


def frame_header(header: Dataset, number: int) -> Dataset:
    """The header as frame ``number`` (from 1) is drawn with: an enhanced multi-frame object's
    window and rescale for that frame (see FRAME_GROUPS), from its item of the Per-frame
    Functional Groups Sequence, else from the Shared Functional Groups Sequence (a macro is in
    one or the other, PS3.3 C.7.6.16.1.1), over any top-level ones. Any other object: as it is."""
    per_frame = header.get("PerFrameFunctionalGroupsSequence") or []
    shared = header.get("SharedFunctionalGroupsSequence") or []
    groups = ([per_frame[number - 1]] if 0 < number <= len(per_frame) else []) + list(shared[:1])
    found: dict[str, DataElement] = {}
    for sequence, keywords in FRAME_GROUPS:
        macro: Dataset | None = next((group[sequence][0] for group in groups if group.get(sequence)), None)
        if macro is None:
            continue
        found.update((keyword, macro[keyword]) for keyword in keywords if keyword in macro)
    if not found:
        return header
    view = Dataset(dict(header.items()))  # a new data set of the same (unconverted) elements
    for element in found.values():
        view[element.tag] = element
    return view
