"""What a WADO-RS Retrieve Rendered or Thumbnail request names (PS3.18 10.4.1.1.3, 10.4.1.1.4):
the instances and frames, found in the index, each retrieve audited, and drawn by rendering.py.

- A study or series renders as each of its images (objects with pixel data; reports and other
  non-image objects are left out), in series then instance order; an instance as its first
  frame (PS3.18 leaves the choice for a single-frame media type), or all its frames when the
  media type is a multi-frame one (GIF); named frames as themselves.
- A thumbnail (PS3.18 10.4.1.1.4: the origin server chooses what represents the resource) is
  the one the study page shows: a series' middle image (Series.thumbnail_key, drawn at ingest,
  reused when it is there), a study's first series with images, an instance's middle frame.
"""

import io
from dataclasses import dataclass

from PIL import Image

from imaging.archive.rendering import PNG, CannotRender, Rendering, object_rendered, pictures_encode
from imaging.archive.transcode import VIDEO_SYNTAXES, instance_path
from imaging.ingest import storage
from imaging.models import Instance, Series, Study
from vetclinic.audit.services import Actor, audit_record


class NotStored(LookupError):
    """No study, series or instance with the UIDs asked for: the message says which."""


class NoSuchFrame(LookupError):
    """A frame number beyond the instance's Number of Frames (PS3.18 numbers frames from 1)."""


@dataclass(frozen=True)
class Picture:
    """One rendered item: a frame (or, as a GIF, several) of one stored instance."""

    storage_key: str
    sop_instance_uid: str
    frames: tuple[int, ...]
    location: str = ""  # its own rendered resource, relative to the DICOMweb root


@dataclass(frozen=True)
class Thumbnail:
    """What represents a resource: the PNG kept at ingest, if any, and the picture to draw when
    it is not there or does not fit the request."""

    picture: Picture
    kept: str = ""


def rendered_pictures(
    *,
    actor: Actor,
    study_uid: str,
    series_uid: str | None = None,
    instance_uid: str | None = None,
    frames: tuple[int, ...] = (),
    animated: bool = False,
) -> list[Picture]:
    """The renderings a Retrieve Rendered request names, audited. ``animated``: the media type
    holds several frames (GIF), so an instance is one item of all its (or the named) frames.
    Raises NotStored, NoSuchFrame, CannotRender (nothing in the resource has pixel data)."""
    study, instances = _instances_named(study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid)
    pictures: list[Picture] = []
    for instance in instances:
        numbers = frames or (tuple(range(1, instance.number_of_frames + 1)) if animated else (1,))
        _frames_check(instance, numbers)
        path = _resource(study_uid, instance.series.series_instance_uid, instance.sop_instance_uid, ())
        if animated or not frames:
            where = f"{path}/frames/{','.join(map(str, frames))}" if frames else path
            pictures.append(
                Picture(instance.storage_key, instance.sop_instance_uid, numbers, f"{where}/rendered")
            )
        else:
            pictures += [
                Picture(instance.storage_key, instance.sop_instance_uid, (n,), f"{path}/frames/{n}/rendered")
                for n in numbers
            ]
    audit_record(
        actor=actor, instance=study, action="rendered",
        changes={"resource": [_resource(study_uid, series_uid, instance_uid, frames)], "instances": [len(instances)]},
    )  # fmt: skip
    return pictures


@dataclass(frozen=True)
class StoredVideo:
    """An instance whose pixel data is a video bitstream (transcode.VIDEO_SYNTAXES)."""

    storage_key: str
    transfer_syntax_uid: str


def rendered_video(
    *, actor: Actor, study_uid: str, series_uid: str, instance_uid: str, frames: tuple[int, ...] = ()
) -> StoredVideo | None:
    """The instance named, if it is a video (audited as a rendering of it); None if it is not
    (or is not stored: rendered_pictures says which). A video is rendered as itself, its own
    media type (PS3.18 8.7.4: video/mpeg, video/mp4 are rendered media types): nothing here
    decodes a video to draw one of its frames. Raises NoSuchFrame."""
    row = (
        Instance.objects.filter(
            series__study__study_instance_uid=study_uid, series__series_instance_uid=series_uid,
            sop_instance_uid=instance_uid, transfer_syntax_uid__in=VIDEO_SYNTAXES,
        )
        .select_related("series__study")
        .first()
    )  # fmt: skip
    if row is None:
        return None
    _frames_check(row, frames)
    audit_record(
        actor=actor, instance=row.series.study, action="rendered",
        changes={"resource": [_resource(study_uid, series_uid, instance_uid, frames)], "instances": [1]},
    )  # fmt: skip
    return StoredVideo(row.storage_key, row.transfer_syntax_uid)


def picture_render(picture: Picture, rendering: Rendering, media_type: str) -> bytes:
    """Raises CannotRender."""
    with instance_path(picture.storage_key) as path:
        return object_rendered(path, picture.frames, rendering, media_type)


def thumbnail_find(
    *,
    actor: Actor,
    study_uid: str,
    series_uid: str | None = None,
    instance_uid: str | None = None,
    frame: int | None = None,
) -> Thumbnail:
    """What represents the resource (see the module's docstring), audited. Raises NotStored,
    NoSuchFrame, CannotRender (no image in it)."""
    if instance_uid is not None:
        study, instances = _instances_named(
            study_uid=study_uid, series_uid=series_uid, instance_uid=instance_uid
        )
        instance = instances[0]
        number = frame or middle_frame(instance)
        _frames_check(instance, (number,))
        thumbnail = Thumbnail(Picture(instance.storage_key, instance.sop_instance_uid, (number,)))
    else:
        series_rows = Series.objects.select_related("study").filter(study__study_instance_uid=study_uid)
        if series_uid is not None:
            series_rows = series_rows.filter(series_instance_uid=series_uid)
        representative = None
        for series in series_rows.order_by("series_number", "id"):
            if (representative := series_representative(series)) is not None:
                break
        if representative is None:
            _exists_or_raise(study_uid, series_uid)
            raise CannotRender("it holds no image to draw a thumbnail from")
        study, series = representative.series.study, representative.series
        picture = Picture(
            representative.storage_key, representative.sop_instance_uid, (middle_frame(representative),)
        )
        thumbnail = Thumbnail(picture, series.thumbnail_key)
    audit_record(
        actor=actor, instance=study, action="thumbnail",
        changes={"resource": [_resource(study_uid, series_uid, instance_uid, (frame,) if frame else ())]},
    )  # fmt: skip
    return thumbnail


def thumbnail_render(thumbnail: Thumbnail, rendering: Rendering, media_type: str) -> bytes:
    """The kept PNG when it fits the request (no viewport): as it is, or re-encoded; else the
    picture drawn. Raises CannotRender."""
    if thumbnail.kept and rendering.viewport is None and rendering.window is None:
        try:
            kept = storage.object_get(thumbnail.kept)
        except OSError:  # recorded but gone (FileNotFoundError on disk and on S3): draw it anew
            pass
        else:
            if media_type == PNG:
                return kept
            with Image.open(io.BytesIO(kept)) as stored:
                picture = stored.convert("L" if stored.mode == "L" else "RGB")
            return pictures_encode([picture], media_type, rendering.quality)
    return picture_render(thumbnail.picture, rendering, media_type)


def series_representative(series: Series) -> Instance | None:
    """The series' middle image (by Instance Number): what its thumbnail shows."""
    images = series.instances.filter(rows__isnull=False).order_by("instance_number", "id")
    count = images.count()
    return images.select_related("series__study")[count // 2] if count else None


def middle_frame(instance: Instance) -> int:
    return instance.number_of_frames // 2 + 1


def _instances_named(
    *, study_uid: str, series_uid: str | None, instance_uid: str | None
) -> tuple[Study, list[Instance]]:
    found = Instance.objects.select_related("series__study").filter(
        series__study__study_instance_uid=study_uid
    )
    if series_uid is not None:
        found = found.filter(series__series_instance_uid=series_uid)
    if instance_uid is not None:
        found = found.filter(sop_instance_uid=instance_uid)
    else:
        found = found.filter(rows__isnull=False)  # images only: a report has nothing to draw
    instances = list(found.order_by("series__series_number", "series_id", "instance_number", "id"))
    if not instances:
        _exists_or_raise(study_uid, series_uid)
        if instance_uid is not None:
            raise NotStored("No instance with that SOP Instance UID in that series.")
        raise CannotRender("it holds no image to render")
    return instances[0].series.study, instances


def _exists_or_raise(study_uid: str, series_uid: str | None) -> None:
    if not Study.objects.filter(study_instance_uid=study_uid).exists():
        raise NotStored("No study with that Study Instance UID.")
    if (
        series_uid is not None
        and not Series.objects.filter(
            study__study_instance_uid=study_uid, series_instance_uid=series_uid
        ).exists()
    ):
        raise NotStored("No series with that Series Instance UID in that study.")


def _frames_check(instance: Instance, numbers: tuple[int, ...]) -> None:
    if instance.rows is None:
        raise CannotRender("the instance has no pixel data to render")
    count = instance.number_of_frames
    if any(number > count for number in numbers):
        raise NoSuchFrame(f"The instance has {count} frame{'s' * (count != 1)}.")


def _resource(study: str, series: str | None, instance: str | None, frames: tuple[int, ...]) -> str:
    """The resource as PS3.18 spells its path, for the audit log."""
    path = (
        f"studies/{study}"
        + (f"/series/{series}" if series else "")
        + (f"/instances/{instance}" if instance else "")
    )
    return path + (f"/frames/{','.join(map(str, frames))}" if frames else "")
