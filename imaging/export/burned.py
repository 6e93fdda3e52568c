"""One image as a JPEG or PNG with the study's saved annotations drawn on it ("burned in").

The picture is the one WADO-RS ``/rendered`` draws (imaging/archive/rendering.py: the object's
own window unless one is given). The annotations are the current AnnotationVersion's, those whose
``metadata.referencedImageId`` names this instance and frame (``.../instances/{sop}/frames/{n}``).
Their handles are in world (patient) coordinates, mm; each goes to a pixel through the image
plane as the viewer places the image (viewer/src/vet/guided.js ``planeOf``, PS3.3 C.7.6.2.1.1):
pixel (column c, row r) lies at IPP + c·Δc·rowCosines + r·Δr·columnCosines, with Δc Pixel
Spacing's second value (column spacing) and Δr its first (row spacing); so c = (P−IPP)·row/Δc,
r = (P−IPP)·col/Δr. Pixel (c, r) is the centre of Pillow's pixel (c, r).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from pydicom import dcmread
from pydicom.dataset import Dataset

from imaging.annotations.services import annotations_current, image_ref
from imaging.archive.rendering import (
    CannotRender,
    Rendering,
    Window,
    frame_header,
    frame_picture,
    frames_decode,
    pictures_encode,
)
from imaging.archive.transcode import instance_path
from imaging.export.selection import NotExportable, NotStored
from imaging.models import Instance, Study
from vetclinic.audit.services import Actor, audit_record

COLOUR = (255, 255, 0)  # Cornerstone3D's own annotation colour: what the vet saw
SHADOW = (0, 0, 0)


class NoSuchImage(LookupError):
    """The study has no instance with that SOP Instance UID."""


@dataclass(frozen=True)
class Plane:
    """The image plane of one frame (PS3.3 C.7.6.2): where its first pixel's centre is, the
    directions of a row and a column, and the spacing between columns and between rows (mm)."""

    origin: tuple[float, float, float]
    along: tuple[float, float, float]
    down: tuple[float, float, float]
    column_spacing: float
    row_spacing: float

    def pixel(self, world: Sequence[float]) -> tuple[float, float]:
        d = [float(world[i]) - self.origin[i] for i in range(3)]
        x = sum(d[i] * self.along[i] for i in range(3))
        y = sum(d[i] * self.down[i] for i in range(3))
        return x / self.column_spacing, y / self.row_spacing


def frame_plane(header: Dataset, frame: int) -> Plane:
    """The plane as Cornerstone3D's metadata gives it: an enhanced object's per-frame (else
    shared) Plane Position, Plane Orientation and Pixel Measures (PS3.3 C.7.6.16.2.1-3), else
    the top-level attributes; missing ones default as planeOf's do (origin 0, axes x and y,
    spacing 1). Pixel Spacing, else Imager Pixel Spacing (a projection radiograph's, PS3.3
    10.7.1.1), as the viewer's metadata provider falls back."""
    per_frame = header.get("PerFrameFunctionalGroupsSequence") or []
    shared = header.get("SharedFunctionalGroupsSequence") or []
    groups = ([per_frame[frame - 1]] if 0 < frame <= len(per_frame) else []) + list(shared[:1])

    def found(sequence: str, keyword: str) -> Any:
        for group in groups:
            if group.get(sequence) and group[sequence][0].get(keyword) is not None:
                return group[sequence][0].get(keyword)
        return header.get(keyword)

    position = found("PlanePositionSequence", "ImagePositionPatient") or [0, 0, 0]
    orientation = found("PlaneOrientationSequence", "ImageOrientationPatient") or [1, 0, 0, 0, 1, 0]
    spacing = found("PixelMeasuresSequence", "PixelSpacing") or header.get("ImagerPixelSpacing") or [1, 1]
    row, column = float(spacing[0]) or 1.0, float(spacing[1]) or 1.0
    o = [float(value) for value in orientation]
    return Plane(
        (float(position[0]), float(position[1]), float(position[2])),
        (o[0], o[1], o[2]), (o[3], o[4], o[5]), column, row,
    )  # fmt: skip


def image_annotations(*, study: Study, sop_instance_uid: str, frame: int) -> list[dict[str, Any]]:
    """The current saved annotations drawn on this frame of this instance."""
    current = annotations_current(study=study)
    marks = []
    for annotation in current.annotations if current else []:
        ref = image_ref(str((annotation.get("metadata") or {}).get("referencedImageId") or ""))
        if ref is not None and ref.sop_instance_uid == sop_instance_uid and ref.frame == frame:
            marks.append(annotation)
    return marks


def image_burned(
    *,
    actor: Actor,
    study: Study,
    sop_instance_uid: str,
    frame: int,
    media_type: str,
    annotations: bool = True,
    window: Window | None = None,
    quality: int = 90,
) -> bytes:
    """The frame rendered, with its annotations drawn when ``annotations``; audited. Raises
    NoSuchImage, NotStored (``frame``), NotExportable (``instance``: no pixel data), CannotRender."""
    instance = Instance.objects.filter(series__study=study, sop_instance_uid=sop_instance_uid).first()
    if instance is None:
        raise NoSuchImage("The study has no instance with that SOP Instance UID.")
    if instance.rows is None:
        raise NotExportable("instance", "The instance has no pixel data to draw.")
    if not 1 <= frame <= instance.number_of_frames:
        raise NotStored("frame", f"The instance has {instance.number_of_frames} frame(s), numbered from 1.")
    picture = frame_drawn(instance, frame, window)
    marks = (
        image_annotations(study=study, sop_instance_uid=sop_instance_uid, frame=frame) if annotations else []
    )
    if marks:
        picture = marks_draw(picture, marks, instance.storage_key, frame)
    audit_record(
        actor=actor, instance=study, action="exported",
        changes={"format": [media_type], "instance": [sop_instance_uid], "frame": [frame], "annotations": [len(marks)]},
    )  # fmt: skip
    return pictures_encode([picture], media_type, quality)


def frame_drawn(instance: Instance, frame: int, window: Window | None = None) -> Image.Image:
    """The frame as /rendered draws it, as an RGB picture. Raises CannotRender."""
    with instance_path(instance.storage_key) as path:
        header, (pixels,) = frames_decode(path, [frame])
    return frame_picture(frame_header(header, frame), pixels, Rendering(window=window)).convert("RGB")


def marks_draw(
    picture: Image.Image, marks: list[dict[str, Any]], storage_key: str, frame: int
) -> Image.Image:
    """Each annotation's lines, handles and result text drawn on a copy of ``picture``."""
    with instance_path(storage_key) as path:
        plane = frame_plane(dcmread(path, stop_before_pixels=True), frame)
    drawn = picture.copy()
    draw = ImageDraw.Draw(drawn)
    width = max(1, round(min(drawn.size) / 256))
    font = ImageFont.load_default(size=max(11, min(drawn.size) // 28))
    for mark in marks:
        data = mark.get("data") or {}
        handles = data.get("handles") or {}
        try:
            points = [plane.pixel(point) for point in handles.get("points") or []]
        except (TypeError, ValueError, IndexError):
            continue  # a malformed point: that mark is left out, not the picture
        tool = str((mark.get("metadata") or {}).get("toolName") or "")
        for segment in _segments(tool, points):
            draw.line(segment, fill=COLOUR, width=width)
        if tool == "EllipticalROI" and len(points) == 4:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            draw.ellipse((min(xs), min(ys), max(xs), max(ys)), outline=COLOUR, width=width)
        for x, y in points:
            r = width * 2
            draw.ellipse((x - r, y - r, x + r, y + r), outline=COLOUR, width=width)
        text = str((data.get("vetpacs") or {}).get("text") or "")
        if text and points:
            box = (handles.get("textBox") or {}).get("worldPosition")
            try:
                x, y = plane.pixel(box) if box else (points[-1][0] + 6 * width, points[-1][1] + 4 * width)
            except (TypeError, ValueError, IndexError):
                x, y = points[-1]
            stroke = max(1, width // 2 + 1)
            left, top, right, bottom = draw.textbbox((x, y), text, font=font, stroke_width=stroke)
            # Kept inside the picture (a label near the right or bottom edge is moved in, not cut).
            x -= max(0.0, right - (drawn.width - 1)) - max(0.0, -left)
            y -= max(0.0, bottom - (drawn.height - 1)) - max(0.0, -top)
            draw.text((x, y), text, fill=COLOUR, font=font, stroke_width=stroke, stroke_fill=SHADOW)
    return drawn


def _segments(tool: str, points: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """The straight lines of a tool's figure, from its handles as Cornerstone3D keeps them."""
    if len(points) < 2 or tool == "EllipticalROI":
        return []
    if tool == "RectangleROI" and len(points) == 4:  # corners: top left, top right, bottom left, bottom right
        tl, tr, bl, br = points
        return [[tl, tr, br, bl, tl]]
    if tool in ("Angle", "PlanarFreehandROI", "SplineROI") or len(points) % 2:
        return [points]  # a polyline: the angle's two arms meet at the middle handle
    return [points[i : i + 2] for i in range(0, len(points), 2)]  # Length, Arrow, Cobb's two lines, axes


__all__ = ["CannotRender", "NoSuchImage", "frame_plane", "image_annotations", "image_burned", "marks_draw"]
