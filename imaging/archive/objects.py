"""The stored instances a WADO-RS retrieve names (PS3.18 10.4.1: a study, a series or one
instance), in series and instance number order, and each one's bytes: as stored, streamed from
storage a chunk at a time (never a whole study in memory), or decompressed into an uncompressed
transfer syntax by transcode.py. Every retrieve is audited here: who, what, how many."""

from collections.abc import Iterator
from io import BytesIO
from typing import NamedTuple

from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from imaging.archive.stored import object_open
from imaging.archive.transcode import UNCOMPRESSED, dataset_transcoded, instance_path
from imaging.models import Instance, Study
from vetclinic.audit.services import Actor, audit_record

CHUNK = 1 << 20  # bytes read from storage and sent at a time


class NotStored(LookupError):
    """No such study, series or instance: the message names what was asked for."""


class StoredInstance(NamedTuple):
    study_id: int
    series_instance_uid: str
    sop_instance_uid: str
    storage_key: str
    transfer_syntax_uid: str
    file_size: int
    number_of_frames: int


def instances_stored(
    *, study_instance_uid: str, series_instance_uid: str | None = None, sop_instance_uid: str | None = None
) -> list[StoredInstance]:
    """The instances named, in series number, then instance number order; one query.
    Raises NotStored when there are none."""
    instances = Instance.objects.filter(series__study__study_instance_uid=study_instance_uid)
    if series_instance_uid is not None:
        instances = instances.filter(series__series_instance_uid=series_instance_uid)
    if sop_instance_uid is not None:
        instances = instances.filter(sop_instance_uid=sop_instance_uid)
    rows = instances.order_by("series__series_number", "series_id", "instance_number", "id").values_list(
        "series__study_id", "series__series_instance_uid", "sop_instance_uid", "storage_key",
        "transfer_syntax_uid", "file_size", "number_of_frames",
    )  # fmt: skip
    stored = [StoredInstance(*row) for row in rows]
    if not stored:
        raise NotStored(not_stored_message(study_instance_uid, series_instance_uid, sop_instance_uid))
    return stored


def not_stored_message(study: str, series: str | None = None, instance: str | None = None) -> str:
    if instance is not None:
        return f"No instance {instance} in series {series} of study {study}."
    if series is not None:
        return f"No series {series} in study {study}."
    return f"No study {study}."


def retrieve_audit(*, actor: Actor, study_id: int, what: str, count: int) -> None:
    """Record a retrieve: who (``actor``), what (a study's, series', instance's objects, metadata,
    frames or bulk data) and how many instances."""
    study = Study.objects.get(pk=study_id)
    audit_record(
        actor=actor, instance=study, action="retrieve",
        changes={"what": [None, what], "instances": [None, count]},
    )  # fmt: skip


def syntax_producible(stored: str, wanted: str) -> bool:
    """Whether an object stored in ``stored`` can be sent in ``wanted``: as stored, or an
    uncompressed syntax when the stored one is uncompressed or has a decoder here."""
    if wanted == stored:
        return True
    if wanted not in UNCOMPRESSED:
        return False  # we decompress, never compress (transcode.py)
    if not UID(stored).is_compressed:
        return True
    try:
        return get_decoder(stored).is_available
    except NotImplementedError:  # no decoder for that syntax at all
        return False


def object_chunks(storage_key: str) -> Iterator[bytes]:
    """The stored object as it was stored, a chunk at a time."""
    with object_open(storage_key) as handle:
        while piece := handle.read(CHUNK):
            yield piece


def object_transcoded(storage_key: str, syntax: str) -> bytes:
    """The stored object as a Part 10 file in ``syntax`` (an uncompressed one): one object in
    memory while it is re-encoded. Raises transcode.CannotTranscode."""
    with instance_path(storage_key) as path:
        dataset = dataset_transcoded(path, syntax)
    out = BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()
