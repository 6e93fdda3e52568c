"""Series thumbnails: the middle image of a series, drawn as WADO-RS /thumbnail draws it
(imaging/archive/rendering.py), kept as a small PNG in storage for the study page."""

import logging

from imaging.archive.rendered import Picture, middle_frame, picture_render, series_representative
from imaging.archive.rendering import PNG, CannotRender, Rendering
from imaging.ingest import storage
from imaging.models import Series

log = logging.getLogger(__name__)


def series_thumbnail_render(*, series_id: int) -> str | None:
    series = Series.objects.get(pk=series_id)
    instance = series_representative(series)
    if instance is None:
        return None
    picture = Picture(instance.storage_key, instance.sop_instance_uid, (middle_frame(instance),))
    try:
        data = picture_render(picture, Rendering(thumbnail=True), PNG)
    except CannotRender:
        log.warning("no thumbnail for series %s: pixel data not decodable", series_id, exc_info=True)
        return None
    key = f"thumbnails/series-{series.pk}.{instance.pk}.png"
    if storage.default_storage.exists(key):
        storage.object_delete(key)
    storage.object_put(key, data)
    Series.objects.filter(pk=series.pk).update(thumbnail_key=key)
    return key
