"""The metadata of every stored instance, computed when it is indexed and kept, for WADO-RS
``/metadata`` (PS3.18 10.4.1.1.2): a study's or a series' metadata is one query over the kept
documents, joined as they are, not a parse of every file (dcm4chee keeps series metadata for
the same reason; a 500-instance series is one read).

Each document is the instance's DICOM JSON (PS3.18 F.2) without its bulk data, written from the
stored bytes by dicomjson.py: Pixel Data and any other binary value over 1 KiB is a BulkDataURI
(F.2.6) naming our ``/bulkdata`` resource; smaller binary values are InlineBinary (F.2.7); the
stored transfer syntax is Available Transfer Syntax UID. It is what the stored
object says (the headers rewritten on linking, imaging/reconcile/services.py, say the record's
patient attributes): it is computed again whenever the instance's stored object changes (a
replacing version, a rewrite), and a kept document whose storage key is not its instance's is
computed again when read, so nothing that changes an object can leave its metadata stale.

BulkDataURIs are kept relative to the instance's own resource (``bulkdata/7FE00010``): the
adapter puts the instance's address in front (``bulk_uris_resolve``) when it answers, so the
host is the request's and a study's new UID (a split) needs nothing rewritten.
"""

import logging
import mmap
from collections.abc import Iterable
from typing import NamedTuple

import orjson
from django.db import transaction

from imaging.archive.dicomjson import AVAILABLE_TRANSFER_SYNTAX, part10_document
from imaging.archive.transcode import instance_path
from imaging.models import Instance, InstanceMetadata

log = logging.getLogger(__name__)

BULK_KEY = '"BulkDataURI":"'


def bulk_uris_resolve(document: str, base: str) -> str:
    """A kept document with its BulkDataURIs made absolute: ``base`` is the instance's address
    ending in '/'. A JSON string never holds an unescaped quote, so the key is found only where
    it is a key."""
    return document.replace(BULK_KEY, BULK_KEY + orjson.dumps(base).decode()[1:-1])


def stored_document(storage_key: str) -> str:
    """The metadata document of a stored object (dicomjson.py), its file mapped: only the header
    is read from the disk (from S3, the object is copied to a temporary file first)."""
    with instance_path(storage_key) as path, open(path, "rb") as handle:
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                return part10_document(view)
            finally:
                view.release()


def stored_document_or_none(storage_key: str) -> str | None:
    """As stored_document, or None (logged) for an object it cannot read: indexing goes on,
    and the document is tried again when it is asked for."""
    try:
        return stored_document(storage_key)
    except Exception:
        log.exception("no metadata for the stored object %s", storage_key)
        return None


def metadata_keep(*, instance_id: int, storage_key: str, document: str | None = None) -> str:
    """Keep ``document`` (else computed from storage) as the metadata of the instance's stored
    object ``storage_key``. An object that cannot be read gets a document with the UIDs the
    index has, so that a series' metadata never fails for one bad object."""
    if document is None:
        document = stored_document_or_none(storage_key)
    if document is None:
        document = _index_document(instance_id)
    InstanceMetadata.objects.update_or_create(
        instance_id=instance_id, defaults={"storage_key": storage_key, "document": document}
    )
    return document


def _index_document(instance_id: int) -> str:
    row = Instance.objects.filter(pk=instance_id).values_list(
        "series__study__study_instance_uid", "series__series_instance_uid", "sop_instance_uid",
        "sop_class_uid", "transfer_syntax_uid",
    ).get()  # fmt: skip
    study, series, sop, sop_class, syntax = row
    return orjson.dumps({
        "00080016": {"vr": "UI", "Value": [sop_class]}, "00080018": {"vr": "UI", "Value": [sop]},
        AVAILABLE_TRANSFER_SYNTAX: {"vr": "UI", "Value": [syntax]},
        "0020000D": {"vr": "UI", "Value": [study]}, "0020000E": {"vr": "UI", "Value": [series]},
    }).decode()  # fmt: skip


class KeptMetadata(NamedTuple):
    """One instance's kept document, with its study's id and the UIDs that address it."""

    study_id: int
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    document: str


def instances_metadata(
    *, study_instance_uid: str, series_instance_uid: str | None = None, sop_instance_uid: str | None = None
) -> list[KeptMetadata]:
    """The kept metadata of a study's, a series' or one instance's instances, in series and
    instance number order: one query. An instance whose document is missing (indexed before
    metadata was kept) or describes an older object is computed now and kept. Empty: no such
    study, series or instance."""
    instances = Instance.objects.filter(series__study__study_instance_uid=study_instance_uid)
    if series_instance_uid is not None:
        instances = instances.filter(series__series_instance_uid=series_instance_uid)
    if sop_instance_uid is not None:
        instances = instances.filter(sop_instance_uid=sop_instance_uid)
    rows = instances.order_by("series__series_number", "series_id", "instance_number", "id").values_list(
        "pk", "series__study_id", "series__series_instance_uid", "sop_instance_uid", "storage_key",
        "metadata__storage_key", "metadata__document",
    )  # fmt: skip
    kept = []
    for pk, study_id, series_uid, sop_uid, storage_key, kept_key, document in rows:
        if document is None or kept_key != storage_key:
            document = metadata_keep(instance_id=pk, storage_key=storage_key)
        kept.append(KeptMetadata(study_id, study_instance_uid, series_uid, sop_uid, document))
    return kept


def metadata_backfill(*, instance_ids: Iterable[int] | None = None, batch: int = 200) -> int:
    """Compute and keep the metadata of every instance that has none or whose document
    describes an older object (``manage.py reindex --metadata``); returns how many."""
    instances = (
        Instance.objects.all() if instance_ids is None else Instance.objects.filter(pk__in=instance_ids)
    )
    done = 0
    last = 0
    while True:
        rows = list(
            instances.filter(pk__gt=last)
            .order_by("pk")
            .values_list("pk", "storage_key", "metadata__storage_key")[:batch]
        )
        if not rows:
            return done
        with transaction.atomic():
            for pk, storage_key, kept_key in rows:
                if kept_key != storage_key:
                    metadata_keep(instance_id=pk, storage_key=storage_key)
                    done += 1
        last = rows[-1][0]
