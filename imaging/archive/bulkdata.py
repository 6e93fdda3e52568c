"""Frames and bulk data values read out of a stored object (WADO-RS ``/frames``, PS3.18
10.4.1.1.3, and ``/bulkdata``, 10.4.1.1.5): only the header and the bytes asked for are read.

A frame goes out as stored (an uncompressed frame's bytes; a compressed frame's fragments,
PS3.5 A.4, found through the Basic or Extended Offset Table) or uncompressed: an uncompressed
object's frame as it lies in the file (little endian), a compressed one's decoded by pydicom
(with the pylibjpeg plugins) as transcode.py would decode it (colour as RGB, PS3.5 8.2.1).

Each reader checks what it can before it returns its iterator (no pixel data, a frame out of
range, no such attribute: the adapter answers 404 before any byte is sent), then reads as the
iterator is consumed.
"""

from collections.abc import Iterator
from contextlib import ExitStack
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments, get_frame, parse_basic_offsets
from pydicom.pixels.utils import pack_bits, pixel_array

from imaging.archive.stored import (
    DEFER_SIZE,
    PixelLayout,
    StoredHeader,
    header_read,
    layout_read,
    object_open,
)
from imaging.archive.transcode import CannotTranscode, instance_path

CHUNK = 1 << 20


class NoSuchFrame(LookupError):
    """A frame number the object does not have (frames are numbered from 1)."""


class NoSuchBulkData(LookupError):
    """The object has no such attribute, or it is not bulk data (no pixel data, a path that
    names nothing)."""


def frames_check(numbers: list[int], count: int) -> None:
    """Raise NoSuchFrame naming the first number outside 1..``count``."""
    for number in numbers:
        if not 1 <= number <= count:
            raise NoSuchFrame(f"Frame {number} is out of range: the instance has {count} frame(s).")


class _Opened:
    """A stored object opened for a frame or bulk data read: its handle and header."""

    def __init__(self, storage_key: str) -> None:
        self.files = ExitStack()
        self.handle: BinaryIO = self.files.enter_context(object_open(storage_key))
        try:
            self.header: StoredHeader = header_read(self.handle)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.files.close()


def frames_read(storage_key: str, numbers: list[int] | None, *, uncompressed: bool) -> Iterator[bytes]:
    """The frames ``numbers`` (1-based, in the order asked; None: all) of the stored object: as
    stored, or ``uncompressed`` (little endian). Raises NoSuchBulkData (no pixel data) or
    NoSuchFrame now."""
    files = ExitStack()
    try:
        handle: BinaryIO = files.enter_context(object_open(storage_key))
        layout = layout_read(handle)
        if not layout.has_pixels:
            raise NoSuchBulkData("The instance has no pixel data.")
        numbers = list(range(1, layout.frames + 1)) if numbers is None else numbers
        frames_check(numbers, layout.frames)
    except BaseException:
        files.close()
        raise
    pixel = layout.pixel
    if pixel is not None and pixel.encapsulated and not uncompressed:
        return _encapsulated_frames(files, handle, layout, numbers)
    if (
        pixel is not None
        and not pixel.encapsulated
        and layout.frame_size is not None
        and layout.syntax.is_little_endian
    ):
        return _native_frames(files, handle, pixel.value_at, numbers, layout.frame_size)
    files.close()  # decoded by pydicom from the file
    return _decoded_frames(storage_key, numbers, layout)


def video_read(storage_key: str, numbers: list[int] | None) -> Iterator[bytes]:
    """A video's frames (transcode.VIDEO_SYNTAXES): the whole bitstream, its fragments one after
    another as stored, whichever frames are named (PS3.18 8.7.3.3.2: the frames of a video are
    not sent apart; the numbers are still checked against its Number of Frames). Raises
    NoSuchBulkData (no encapsulated pixel data) or NoSuchFrame now."""
    files = ExitStack()
    try:
        handle: BinaryIO = files.enter_context(object_open(storage_key))
        layout = layout_read(handle)
        if layout.pixel is None or not layout.pixel.encapsulated:
            raise NoSuchBulkData("The instance has no encapsulated video bitstream.")
        frames_check(numbers or [], layout.frames)
    except BaseException:
        files.close()
        raise
    return _fragments(files, handle, layout.pixel.value_at)


def _fragments(files: ExitStack, handle: BinaryIO, start: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        parse_basic_offsets(handle)  # (read past the Basic Offset Table)
        yield from generate_fragments(handle)
    finally:
        files.close()


def _encapsulated_frames(
    files: ExitStack, handle: BinaryIO, layout: PixelLayout, numbers: list[int]
) -> Iterator[bytes]:
    assert layout.pixel is not None  # (frames_read's condition)
    try:
        for number in numbers:
            handle.seek(layout.pixel.value_at)
            yield get_frame(
                handle, number - 1, number_of_frames=layout.frames, extended_offsets=layout.extended_offsets
            )
    finally:
        files.close()


def _native_frames(
    files: ExitStack, handle: BinaryIO, start: int, numbers: list[int], size: int
) -> Iterator[bytes]:
    try:
        for number in numbers:
            handle.seek(start + (number - 1) * size)
            yield handle.read(size)
    finally:
        files.close()


def _decoded_frames(storage_key: str, numbers: list[int], layout: PixelLayout) -> Iterator[bytes]:
    with instance_path(storage_key) as path:
        whole = None
        for number in numbers:
            try:
                if layout.syntax.is_deflated:  # pydicom decodes those only from a data set read whole
                    whole = whole if whole is not None else dcmread(path).pixel_array
                    frame = whole[number - 1] if layout.frames > 1 else whole
                else:
                    frame = pixel_array(path, index=number - 1, as_rgb=True)
            except Exception as error:  # the decoders' errors are many: each says what failed
                raise CannotTranscode(f"cannot decode frame {number}: {error}") from error
            if layout.one_bit:
                yield pack_bits(frame)  # Bits Allocated 1: packed again, as PS3.5 8.1.1 stores it
                continue
            if frame.dtype.itemsize > 1:
                frame = frame.astype(frame.dtype.newbyteorder("<"), copy=False)
            yield frame.tobytes()


def bulk_value_read(storage_key: str, path: list[str]) -> Iterator[bytes]:
    """The value of the (non-pixel) attribute that ``path`` names, as stored: a tag, or a
    sequence's tag, an item number (from 0) and so on down (``00540016/0/00181072``), as
    metadata.py writes its BulkDataURIs. Raises NoSuchBulkData now."""
    opened = _Opened(storage_key)
    try:
        dataset, pixel = opened.header.dataset, opened.header.pixel
        if pixel is not None and _first_tag(path) > pixel.tag:
            # An attribute after the pixel data (PS3.5 7.1: trailing padding, a private element):
            # the whole data set read, large values (the pixel data) left deferred.
            opened.handle.seek(0)
            dataset = dcmread(opened.handle, defer_size=DEFER_SIZE)
        element = _element_at(dataset, path)
        value = element.value
        if not isinstance(value, (bytes, bytearray)):
            raise NoSuchBulkData(f"{'/'.join(path)} is not a binary value.")
    except BaseException:
        opened.close()
        raise
    opened.close()
    return iter([bytes(value[at : at + CHUNK]) for at in range(0, len(value), CHUNK)] or [b""])


def pixel_data_chunks(storage_key: str) -> Iterator[bytes]:
    """An uncompressed object's Pixel Data value as stored, a chunk at a time."""
    opened = _Opened(storage_key)
    pixel = opened.header.pixel
    if pixel is None or pixel.encapsulated:
        opened.close()
        raise NoSuchBulkData("The instance has no uncompressed pixel data in its file.")
    return _value_chunks(opened, pixel.value_at, pixel.length)


def _value_chunks(opened: _Opened, start: int, length: int) -> Iterator[bytes]:
    try:
        opened.handle.seek(start)
        left = length
        while left > 0:
            piece = opened.handle.read(min(CHUNK, left))
            if not piece:
                return
            left -= len(piece)
            yield piece
    finally:
        opened.close()


def _first_tag(path: list[str]) -> int:
    try:
        return int(path[0], 16)
    except (ValueError, IndexError):
        return -1


def _element_at(dataset: Dataset, path: list[str]) -> DataElement:
    """The element ``path`` names (tags as 8 hex digits, item numbers between them)."""
    try:
        tags = [int(part, 16) for part in path[::2]]
        items = [int(part) for part in path[1::2]]
    except ValueError:
        raise NoSuchBulkData(f"{'/'.join(path)} names no attribute.") from None
    current = dataset
    for depth, tag in enumerate(tags):
        if tag not in current:
            raise NoSuchBulkData(f"The instance has no attribute {'/'.join(path[: depth * 2 + 1])}.")
        element = current[tag]
        if depth == len(tags) - 1:
            if depth < len(items):
                break
            return element
        if element.VR != "SQ" or depth >= len(items) or not 0 <= items[depth] < len(element.value):
            break
        current = element.value[items[depth]]
    raise NoSuchBulkData(f"{'/'.join(path)} names no attribute.")
