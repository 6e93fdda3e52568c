"""Series thumbnails: the middle image of a series, windowed, as a small PNG in storage."""

import io
import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_voi_lut  # where it is defined: pydicom.pixels has no __all__

from imaging.ingest import storage
from imaging.models import Series

log = logging.getLogger(__name__)
SIZE = 192


# Any: a frame's samples are whatever type its Bits Allocated and Pixel Representation make them.
def _to_8bit(ds: Dataset, frame: NDArray[Any]) -> Image.Image:
    if ds.get("PhotometricInterpretation", "").startswith(("RGB", "YBR", "PALETTE")):
        if ds.PhotometricInterpretation == "PALETTE COLOR":
            from pydicom.pixels.processing import apply_color_lut

            frame = apply_color_lut(frame, ds)
        if frame.dtype != np.uint8:
            frame = (frame / max(frame.max(), 1) * 255).astype(np.uint8)
        return Image.fromarray(frame, "RGB")
    frame = apply_voi_lut(frame, ds) if "WindowCenter" in ds or "VOILUTSequence" in ds else frame
    frame = frame.astype(np.float64)
    low, high = np.percentile(frame, (0.5, 99.5))
    frame = np.clip((frame - low) / max(high - low, 1e-6), 0, 1)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        frame = 1 - frame  # PS3.3 C.7.6.3.1.2: minimum is white
    return Image.fromarray((frame * 255).astype(np.uint8), "L")


def series_thumbnail_render(*, series_id: int) -> str | None:
    series = Series.objects.get(pk=series_id)
    instances = list(series.instances.filter(rows__isnull=False).order_by("instance_number", "id"))
    if not instances:
        return None
    instance = instances[len(instances) // 2]
    ds = dcmread(io.BytesIO(storage.object_get(instance.storage_key)))
    try:
        frames = ds.pixel_array
    except Exception:
        log.warning("no thumbnail for series %s: pixel data not decodable", series_id, exc_info=True)
        return None
    # Multi-frame: the middle frame (colour images have a trailing samples axis).
    frames_axis = ds.get("NumberOfFrames", 1) and int(ds.get("NumberOfFrames", 1) or 1) > 1
    frame = frames[len(frames) // 2] if frames_axis else frames
    image = _to_8bit(ds, frame)
    image.thumbnail((SIZE, SIZE))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    key = f"thumbnails/series-{series.pk}.{instance.pk}.png"
    if storage.default_storage.exists(key):
        storage.object_delete(key)
    storage.object_put(key, out.getvalue())
    Series.objects.filter(pk=series.pk).update(thumbnail_key=key)
    return key
