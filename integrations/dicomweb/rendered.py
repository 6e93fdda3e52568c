"""WADO-RS rendered and thumbnail resources (PS3.18 10.4.1.1.3 Rendered, 10.4.1.1.4 Thumbnail):
a thin adapter over imaging/archive/rendered.py (what is named) and rendering.py (drawing).

Media types (PS3.18 8.7.4, chosen from Accept or the ``accept`` query parameter, 8.3.3.1):
image/jpeg (the default), image/png and image/gif. PS3.18 10.4.4: a single-part media type
only for a resource that is one item (an instance, one frame, a thumbnail); a study, a series
or several frames are ``multipart/related; type="image/..."``, one part per instance (per frame
when frames are named), each with its Content-Location. GIF is a multi-frame type: several
frames (or a multi-frame instance asked for as image/gif) are one animated GIF. Anything else
is a 406 naming what is supported.

Query parameters (PS3.18 8.3.5.1): ``window=center,width[,function]`` (linear, linear-exact,
sigmoid: PS3.3 C.11.2.1.2), ``viewport=vw,vh[,sx,sy,sw,sh]``, ``quality=1..100`` (JPEG; PNG and
GIF are lossless), ``annotation=patient,technique`` and ``iccprofile`` are accepted and ignored
(nothing is burned in, no profile is embedded). A bad value is a 400 naming the parameter.
"""

import logging
import math
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from rest_framework import exceptions
from rest_framework.request import Request

from imaging.archive.bulkdata import video_read
from imaging.archive.rendered import (
    NoSuchFrame,
    NotStored,
    Picture,
    StoredVideo,
    picture_render,
    rendered_pictures,
    rendered_video,
    thumbnail_find,
    thumbnail_render,
)
from imaging.archive.rendering import (
    DEFAULT_QUALITY,
    GIF,
    JPEG,
    LINEAR,
    LINEAR_EXACT,
    MEDIA_TYPES,
    SIGMOID,
    CannotRender,
    Rendering,
    Viewport,
    Window,
)
from integrations.api.auth import actor_for
from integrations.dicomweb.accept import FRAME_MEDIA_TYPES, media_ranges
from integrations.dicomweb.base import DicomWebView

log = logging.getLogger(__name__)
T = TypeVar("T")
ONE_ITEM = frozenset(MEDIA_TYPES)
FUNCTIONS = {"linear": LINEAR, "linear-exact": LINEAR_EXACT, "linear_exact": LINEAR_EXACT, "sigmoid": SIGMOID}
ANNOTATIONS = {"patient", "technique"}  # PS3.18 8.3.5.1.1
ICC_PROFILES = {"no", "yes", "srgb", "adobergb", "rommrgb"}  # PS3.18 8.3.5.1.5
MAX_VIEWPORT = 8192  # pixels a side: a picture of that size is ~200 MB of work at most
SUPPORTED = (
    "image/jpeg, image/png, image/gif for an instance, a frame or a thumbnail; "
    'multipart/related; type="image/jpeg" (or image/png, image/gif) for any resource'
)


class RenderedView(DicomWebView):
    """GET .../rendered at study, series, instance and frames level (PS3.18 10.4.1.1.3)."""

    def get(
        self,
        request: Request,
        study: str,
        series: str | None = None,
        instance: str | None = None,
        frames: str | None = None,
    ) -> HttpResponseBase:
        numbers = frames_parse(frames) if frames is not None else ()
        rendering = rendering_parse(request.query_params)
        if instance is not None and series is not None:
            try:
                video = rendered_video(
                    actor=actor_for(request), study_uid=study, series_uid=series, instance_uid=instance,
                    frames=numbers,
                )  # fmt: skip
            except NoSuchFrame as error:
                raise exceptions.NotFound(str(error)) from error
            if video is not None:
                return _video_response(request, video)
        if instance is None:
            one_item: frozenset[str] = frozenset()
        else:
            one_item = ONE_ITEM if len(numbers) <= 1 else frozenset({GIF})
        media_type, multipart = media_type_negotiate(_accept(request), one_item=one_item)
        try:
            pictures = rendered_pictures(
                actor=actor_for(request), study_uid=study, series_uid=series, instance_uid=instance,
                frames=numbers, animated=media_type == GIF,
            )  # fmt: skip
            if not multipart:  # one item: the negotiation allowed a single part
                (picture,) = pictures
                return _picture_response(picture_render(picture, rendering, media_type), media_type)
        except (NotStored, NoSuchFrame) as error:
            raise exceptions.NotFound(str(error)) from error
        except CannotRender as error:
            raise exceptions.NotAcceptable(f"This cannot be rendered as {media_type}: {error}") from error
        return _multipart_response(request, pictures, rendering, media_type)


class ThumbnailView(DicomWebView):
    """GET .../thumbnail at study, series, instance and frame level (PS3.18 10.4.1.1.4)."""

    def get(
        self,
        request: Request,
        study: str,
        series: str | None = None,
        instance: str | None = None,
        frames: str | None = None,
    ) -> HttpResponse:
        numbers = frames_parse(frames) if frames is not None else ()
        if len(numbers) > 1:
            raise exceptions.ValidationError({"frames": ["A thumbnail is of one frame."]})
        rendering = rendering_parse(request.query_params, thumbnail=True)
        media_type, multipart = media_type_negotiate(_accept(request), one_item=ONE_ITEM)
        try:
            thumbnail = thumbnail_find(
                actor=actor_for(request), study_uid=study, series_uid=series, instance_uid=instance,
                frame=numbers[0] if numbers else None,
            )  # fmt: skip
            body = thumbnail_render(thumbnail, rendering, media_type)
        except (NotStored, NoSuchFrame) as error:
            raise exceptions.NotFound(str(error)) from error
        except CannotRender as error:
            raise exceptions.NotAcceptable(f"No thumbnail can be drawn: {error}") from error
        if not multipart:
            return _picture_response(body, media_type)
        boundary = uuid.uuid4().hex
        parts = _part(boundary, media_type, request.path, body) + f"--{boundary}--\r\n".encode()
        return HttpResponse(parts, content_type=_multipart_type(media_type, boundary))


def _video_response(request: Request, video: StoredVideo) -> StreamingHttpResponse:
    """A video rendered: its bitstream as stored, in its own media type (video/mp4 ...), when
    the client takes that; the query parameters (window, viewport, quality) do not apply."""
    media_type = FRAME_MEDIA_TYPES[video.transfer_syntax_uid]
    accepted = {entry.related or entry.media_type for entry in media_ranges(_accept(request) or "*/*")}
    if not accepted & {media_type, "video/*", "*/*"}:
        raise exceptions.NotAcceptable(
            f"The instance is a video; it is rendered as {media_type} only (no still picture of a "
            f"video frame is drawn here)."
        )
    response = StreamingHttpResponse(video_read(video.storage_key, None), content_type=media_type)
    response["Vary"] = "Accept"
    return response


def rendering_parse(query: Mapping[str, Any], *, thumbnail: bool = False) -> Rendering:
    """The PS3.18 8.3.5.1 query parameters; raises a ValidationError naming each bad one."""
    errors: dict[str, list[str]] = {}

    def parsed(name: str, parse: Callable[[str], T]) -> T | None:
        if name not in query:
            return None
        try:
            return parse(str(query[name]))
        except ValueError as error:
            errors[name] = [str(error)]
            return None

    window, viewport = parsed("window", window_parse), parsed("viewport", viewport_parse)
    quality = parsed("quality", quality_parse) or DEFAULT_QUALITY
    for name, allowed in (("annotation", ANNOTATIONS), ("iccprofile", ICC_PROFILES)):
        given = {item.strip().lower() for item in str(query.get(name, "")).split(",") if item.strip()}
        if given - allowed:
            errors[name] = [f"Use one or more of {', '.join(sorted(allowed))}."]
    if errors:
        raise exceptions.ValidationError(errors)
    return Rendering(window=window, viewport=viewport, quality=quality, thumbnail=thumbnail)


def window_parse(text: str) -> Window:
    """``center,width[,function]`` (PS3.18 8.3.5.1.4)."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (2, 3):
        raise ValueError("Give center,width,function (function: linear, linear-exact or sigmoid).")
    center, width = _number(parts[0], "center"), _number(parts[1], "width")
    function = FUNCTIONS.get(parts[2].lower()) if len(parts) == 3 else LINEAR
    if function is None:
        raise ValueError(f"The function must be linear, linear-exact or sigmoid, not {parts[2]!r}.")
    window = Window(center, width, function)
    if problem := window.problem():
        raise ValueError(problem[0].upper() + problem[1:] + ".")
    return window


def viewport_parse(text: str) -> Viewport:
    """``vw,vh`` or ``vw,vh,sx,sy,sw,sh`` (PS3.18 8.3.5.1.3); sx, sy empty: 0; sw, sh empty: to
    the image's edge, negative: flipped."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (2, 6):
        raise ValueError("Give vw,vh or vw,vh,sx,sy,sw,sh.")
    width, height = (_whole(part, name) for part, name in zip(parts[:2], ("vw", "vh"), strict=True))
    if not (0 < width <= MAX_VIEWPORT and 0 < height <= MAX_VIEWPORT):
        raise ValueError(f"vw and vh must be between 1 and {MAX_VIEWPORT}.")
    if len(parts) == 2:
        return Viewport(width, height)
    sx, sy = (_whole(part, name) if part else 0 for part, name in zip(parts[2:4], ("sx", "sy"), strict=True))
    sw, sh = (
        _whole(part, name) if part else None for part, name in zip(parts[4:], ("sw", "sh"), strict=True)
    )
    if sx < 0 or sy < 0 or sw == 0 or sh == 0:
        raise ValueError("sx and sy must not be negative, nor sw and sh zero.")
    return Viewport(width, height, sx, sy, sw, sh)


def quality_parse(text: str) -> int:
    """1..100 (PS3.18 8.3.5.1.2)."""
    quality = _whole(text, "quality")
    if not 1 <= quality <= 100:
        raise ValueError("quality must be between 1 and 100.")
    return quality


def frames_parse(text: str) -> tuple[int, ...]:
    """``1,3,5`` (PS3.18 10.4.1.1.6: frame numbers from 1)."""
    try:
        numbers = tuple(int(part) for part in text.split(","))
    except ValueError:
        numbers = ()
    if not numbers or min(numbers) < 1:
        raise exceptions.ValidationError({"frames": ["Give frame numbers from 1, separated by commas."]})
    return numbers


def media_type_negotiate(accept: str, *, one_item: frozenset[str]) -> tuple[str, bool]:
    """The picture's media type and whether it goes in a multipart/related body (PS3.18 8.7.4,
    10.4.4): the client's most preferred (quality values honoured) of what the resource allows;
    ``one_item``: the single-part types it allows. Raises NotAcceptable."""
    ranges = []
    for position, entry in enumerate(part for part in (accept or "*/*").split(",") if part.strip()):
        kind, *parameters = (piece.strip() for piece in entry.split(";"))
        values = dict(_parameter(piece) for piece in parameters if "=" in piece)
        try:
            weight = float(values.get("q", 1))
        except ValueError:
            weight = 1.0
        if weight > 0:
            ranges.append((-weight, position, kind.lower(), values.get("type", JPEG).lower()))
    for _, _, kind, inner in sorted(ranges):
        if kind == "multipart/related" and inner in MEDIA_TYPES:
            return inner, True
        if kind in one_item:
            return kind, False
        if kind in ("*/*", "image/*") and one_item:
            return (JPEG if JPEG in one_item else min(one_item)), False
        if kind == "*/*":
            return JPEG, True
    raise exceptions.NotAcceptable(
        f"None of the media types asked for is supported here. Supported: {SUPPORTED}."
    )


def _accept(request: Request) -> str:
    return str(request.query_params.get("accept") or request.headers.get("Accept", ""))


def _parameter(piece: str) -> tuple[str, str]:
    name, _, value = piece.partition("=")
    return name.strip().lower(), value.strip().strip('"')


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"The {name} must be a number, not {text!r}.")
    return value


def _whole(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {text!r}.") from None


def _picture_response(body: bytes, media_type: str) -> HttpResponse:
    response = HttpResponse(body, content_type=media_type)
    response["Vary"] = "Accept"
    return response


def _multipart_type(media_type: str, boundary: str) -> str:
    return f'multipart/related; type="{media_type}"; boundary={boundary}'


def _part(boundary: str, media_type: str, location: str, body: bytes) -> bytes:
    head = f"--{boundary}\r\nContent-Type: {media_type}\r\nContent-Location: {location}\r\n\r\n"
    return head.encode() + body + b"\r\n"


def _multipart_response(
    request: Request, pictures: list[Picture], rendering: Rendering, media_type: str
) -> StreamingHttpResponse:
    """One part per picture, each drawn as it is sent: a study's renderings are never all held
    at once. A picture that cannot be drawn (a corrupt object) is left out (PS3.18 10.4.4 lets
    the parts be fewer than the instances); the rest still arrive."""
    boundary = uuid.uuid4().hex
    root = request.path[: request.path.index("/studies/")]

    def parts() -> Iterator[bytes]:
        for picture in pictures:
            try:
                body = picture_render(picture, rendering, media_type)
            except CannotRender:
                log.warning("rendered part left out: %s", picture.location, exc_info=True)
                continue
            yield _part(boundary, media_type, f"{root}/{picture.location}", body)
        yield f"--{boundary}--\r\n".encode()

    response = StreamingHttpResponse(parts(), content_type=_multipart_type(media_type, boundary))
    response["Vary"] = "Accept"
    return response
