"""WADO-RS (PS3.18 10.4): a study's, a series' or an instance's objects, their metadata, frames
and bulk data. Thin: the Accept header is read here (accept.py), everything else is
imaging/archive/ (objects.py, metadata.py, bulkdata.py), which also audits each retrieve.
``/rendered`` and ``/thumbnail`` are elsewhere."""

import logging
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import reverse
from rest_framework import exceptions
from rest_framework.request import Request

from imaging.archive.bulkdata import (
    NoSuchBulkData,
    NoSuchFrame,
    bulk_value_read,
    frames_read,
    pixel_data_chunks,
    video_read,
)
from imaging.archive.metadata import bulk_uris_resolve, instances_metadata
from imaging.archive.objects import (
    NotStored,
    StoredInstance,
    instances_stored,
    not_stored_message,
    object_chunks,
    object_transcoded,
    retrieve_audit,
    syntax_producible,
)
from imaging.archive.stored import PIXEL_TAGS
from imaging.archive.transcode import VIDEO_SYNTAXES, CannotTranscode
from imaging.dicom.records.integrity import is_uid
from integrations.api.auth import actor_for
from integrations.dicomweb.accept import (
    ANY,
    EXPLICIT,
    FRAME_MEDIA_TYPES,
    OCTET_STREAM,
    PixelChoice,
    default_syntax_taken,
    dicom_syntaxes,
    media_ranges,
    pixel_choice,
)
from integrations.dicomweb.base import DICOM_JSON, DicomWebView
from integrations.dicomweb.multipart_response import ResponsePart, multipart_response

log = logging.getLogger(__name__)
DICOM = "application/dicom"
MAX_FRAMES = 10_000  # frame numbers in one request


def _uids_check(**uids: str | None) -> None:
    """A malformed UID in the address is a 400 naming it (PS3.5 9.1), not a search for nothing."""
    bad = {name: ["Not a UID."] for name, uid in uids.items() if uid is not None and not is_uid(uid)}
    if bad:
        raise exceptions.ValidationError(bad)


def _stored(study: str, series: str | None = None, instance: str | None = None) -> list[StoredInstance]:
    _uids_check(study=study, series=series, instance=instance)
    try:
        return instances_stored(
            study_instance_uid=study, series_instance_uid=series, sop_instance_uid=instance
        )
    except NotStored as error:
        raise exceptions.NotFound(str(error)) from None


def _what(study: str, series: str | None, instance: str | None, resource: str) -> str:
    target = f"instance {instance}" if instance else f"series {series}" if series else f"study {study}"
    return f"WADO-RS {resource} of {target}"


class InstancesRetrieve(DicomWebView):
    """GET studies/{study}[/series/{series}[/instances/{instance}]]: the objects as
    ``multipart/related; type="application/dicom"`` (PS3.18 10.4.1.1.3), in series and instance
    number order, each as stored or in the syntax the client asks for (decompressed)."""

    def get(
        self, request: Request, study: str, series: str | None = None, instance: str | None = None
    ) -> StreamingHttpResponse:
        stored = _stored(study, series, instance)
        accept = request.headers.get("Accept")
        wanted = dicom_syntaxes(accept)
        chosen: dict[str, str | None] = {}  # per stored syntax: the first the client takes we can make
        plan = []
        for item in stored:
            stored_syntax = item.transfer_syntax_uid
            if stored_syntax not in chosen:
                chosen[stored_syntax] = next(
                    (
                        stored_syntax if candidate == "*" else candidate
                        for candidate in wanted
                        if candidate == "*" or syntax_producible(stored_syntax, candidate)
                    ),
                    None,
                )
            syntax = chosen[stored_syntax]
            if syntax is None and stored_syntax in VIDEO_SYNTAXES and default_syntax_taken(accept):
                # PS3.18 8.7.3.5.2's default (Explicit VR Little Endian) would need the video
                # decoded: without a transfer syntax asked for, it goes as stored.
                syntax = chosen[stored_syntax] = stored_syntax
            if syntax is None:
                raise exceptions.NotAcceptable(
                    f"Instance {item.sop_instance_uid} is stored in {stored_syntax} and cannot be sent in "
                    f"any transfer syntax asked for; ask for it as stored (transfer-syntax=*) or "
                    f'uncompressed (multipart/related; type="{DICOM}"; transfer-syntax={EXPLICIT}).'
                )
            plan.append((item, syntax))
        retrieve_audit(
            actor=actor_for(request), study_id=stored[0].study_id,
            what=_what(study, series, instance, "retrieve"), count=len(plan),
        )  # fmt: skip
        return multipart_response(_dicom_parts(plan), DICOM)


def _dicom_parts(plan: list[tuple[StoredInstance, str]]) -> Iterator[ResponsePart]:
    for item, syntax in plan:
        content_type = f"{DICOM}; transfer-syntax={syntax}"
        if syntax == item.transfer_syntax_uid:
            yield ResponsePart(content_type, object_chunks(item.storage_key), item.file_size)
            continue
        try:
            data = object_transcoded(item.storage_key, syntax)
        except CannotTranscode:
            # Found only once the answer is under way: the rest of the study still goes.
            log.exception("WADO-RS left out %s: it cannot be decoded", item.sop_instance_uid)
            continue
        yield ResponsePart(content_type, [data], len(data))


class MetadataRetrieve(DicomWebView):
    """GET .../metadata at study, series or instance level (PS3.18 10.4.1.1.2): the kept DICOM
    JSON of each instance (imaging/archive/metadata.py), one query, BulkDataURIs made absolute."""

    def get(
        self, request: Request, study: str, series: str | None = None, instance: str | None = None
    ) -> HttpResponse:
        _uids_check(study=study, series=series, instance=instance)
        kept = instances_metadata(
            study_instance_uid=study, series_instance_uid=series, sop_instance_uid=instance
        )
        if not kept:
            raise exceptions.NotFound(not_stored_message(study, series, instance))
        root = _root(request, study)
        body = ",".join(
            bulk_uris_resolve(
                item.document,
                f"{root}studies/{item.study_instance_uid}/series/{item.series_instance_uid}"
                f"/instances/{item.sop_instance_uid}/",
            )
            for item in kept
        )
        retrieve_audit(
            actor=actor_for(request), study_id=kept[0].study_id,
            what=_what(study, series, instance, "metadata"), count=len(kept),
        )  # fmt: skip
        return HttpResponse(f"[{body}]".encode(), content_type=DICOM_JSON)


def _root(request: Request, study: str) -> str:
    """The absolute address of /dicomweb/: settings.DICOMWEB_BASE_URL, else as this request
    reached it (its scheme and Host header)."""
    base: str = settings.DICOMWEB_BASE_URL
    if base:
        return base.rstrip("/") + "/"
    study_path = reverse("dicomweb:study", kwargs={"study": study})
    return request.build_absolute_uri(study_path[: study_path.rindex("studies/")])


def _pixel_choice(request: Request, item: StoredInstance) -> PixelChoice:
    choice = pixel_choice(
        request.headers.get("Accept"), item.transfer_syntax_uid,
        decodable=syntax_producible(item.transfer_syntax_uid, EXPLICIT),
    )  # fmt: skip
    if item.transfer_syntax_uid in VIDEO_SYNTAXES and (choice is None or choice.uncompressed):
        media = FRAME_MEDIA_TYPES[item.transfer_syntax_uid]
        raise exceptions.NotAcceptable(
            f"The pixel data is a video ({item.transfer_syntax_uid}): its frames are its whole bitstream, "
            f"which is not decoded here; ask for {media} (or transfer-syntax=*)."
        )
    if choice is None:
        raise exceptions.NotAcceptable(
            f"The pixel data is stored in {item.transfer_syntax_uid} and cannot be sent as any media "
            f'type asked for; ask for multipart/related; type="{OCTET_STREAM}" (uncompressed) or '
            f"transfer-syntax=* (as stored)."
        )
    return choice


def _frame_numbers(frames: str) -> list[int]:
    """The frame list of the address (PS3.18 10.4.1.1.3: comma-separated numbers from 1)."""
    pieces = frames.split(",")
    if len(pieces) > MAX_FRAMES or not all(piece.strip().isdigit() for piece in pieces):
        raise exceptions.ValidationError(
            {"frames": [f"A comma-separated list of at most {MAX_FRAMES} frame numbers (from 1)."]}
        )
    return [int(piece) for piece in pieces]


class FramesRetrieve(DicomWebView):
    """GET .../instances/{instance}/frames/{frames} (PS3.18 10.4.1.1.3): the frames as
    ``multipart/related``, uncompressed (``application/octet-stream``) or as stored
    (``image/jpeg``, ``image/jls``, ``image/jp2`` ... with its transfer-syntax)."""

    def get(
        self, request: Request, study: str, series: str, instance: str, frames: str
    ) -> StreamingHttpResponse:
        numbers = _frame_numbers(frames)
        item = _stored(study, series, instance)[0]
        choice = _pixel_choice(request, item)
        part_type = f"{choice.media_type}; transfer-syntax={choice.transfer_syntax}"
        parts: Iterable[ResponsePart]
        try:
            if item.transfer_syntax_uid in VIDEO_SYNTAXES:  # one part: the bitstream (PS3.18 8.7.3.3.2)
                parts = [ResponsePart(part_type, video_read(item.storage_key, numbers))]
            else:
                pieces = frames_read(item.storage_key, numbers, uncompressed=choice.uncompressed)
                parts = (ResponsePart(part_type, [piece], len(piece)) for piece in pieces)
        except (NoSuchFrame, NoSuchBulkData) as error:
            raise exceptions.NotFound(str(error)) from None
        retrieve_audit(
            actor=actor_for(request), study_id=item.study_id,
            what=_what(study, series, instance, f"frames {frames}"), count=1,
        )  # fmt: skip
        return multipart_response(parts, choice.media_type)


class BulkDataRetrieve(DicomWebView):
    """GET .../instances/{instance}/bulkdata/{attribute} (PS3.18 10.4.1.1.5): the value a
    BulkDataURI of our metadata names. Pixel data goes as /frames does (uncompressed in one
    part, or each compressed frame as stored); any other value as stored, octet-stream."""

    def get(
        self, request: Request, study: str, series: str, instance: str, attribute: str
    ) -> StreamingHttpResponse:
        item = _stored(study, series, instance)[0]
        path = [piece.upper() for piece in attribute.strip("/").split("/")]
        try:
            if len(path) == 1 and path[0] in {f"{tag:08X}" for tag in PIXEL_TAGS}:
                response = _pixel_data(request, item)
            else:
                if not any(
                    (entry.related or entry.media_type) in (OCTET_STREAM, ANY, "application/*")
                    for entry in media_ranges(request.headers.get("Accept") or ANY)
                ):
                    raise exceptions.NotAcceptable(f"Bulk data is sent as {OCTET_STREAM} only.")
                chunks = bulk_value_read(item.storage_key, path)
                response = multipart_response([ResponsePart(OCTET_STREAM, chunks)], OCTET_STREAM)
        except (NoSuchBulkData, NoSuchFrame) as error:
            raise exceptions.NotFound(str(error)) from None
        retrieve_audit(
            actor=actor_for(request), study_id=item.study_id,
            what=_what(study, series, instance, f"bulk data {'/'.join(path)}"), count=1,
        )  # fmt: skip
        return response


def _pixel_data(request: Request, item: StoredInstance) -> StreamingHttpResponse:
    choice = _pixel_choice(request, item)
    part_type = f"{choice.media_type}; transfer-syntax={choice.transfer_syntax}"
    if item.transfer_syntax_uid in VIDEO_SYNTAXES:
        return multipart_response(
            [ResponsePart(part_type, video_read(item.storage_key, None))], choice.media_type
        )
    if not choice.uncompressed:
        frames = frames_read(item.storage_key, None, uncompressed=False)
        return multipart_response(
            (ResponsePart(part_type, [frame], len(frame)) for frame in frames), choice.media_type
        )
    try:  # the value as it lies in the file, when it is uncompressed there
        chunks = pixel_data_chunks(item.storage_key)
    except NoSuchBulkData:  # compressed (or deflated): every frame decoded, one after another
        chunks = frames_read(item.storage_key, None, uncompressed=True)
    return multipart_response([ResponsePart(part_type, chunks)], choice.media_type)
