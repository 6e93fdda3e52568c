"""Receiving and indexing DICOM objects.

``instance_receive`` is the C-STORE hot path: check, keep durably, queue; no database.
``instances_index`` is the Celery side: index a batch of stored objects, idempotent on their
SOP Instance UIDs, and link each new study to its animal (imaging/linking.py).
"""
import io
import logging
import struct
import threading
import time
from datetime import datetime, timedelta
from typing import NamedTuple

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils.timezone import now
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import dcmread
from pydicom.tag import Tag
from pydicom.uid import UID
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

from imaging import storage
from imaging.dicom import integrity
from imaging.dicom.datasets import birth_date, header_summary, summary_dates
from imaging.dicom.status import (
    CANNOT_UNDERSTAND,
    DATASET_DOES_NOT_MATCH_SOP_CLASS,
    OUT_OF_RESOURCES,
    error_comment,
)
from imaging.linking import study_link
from imaging.models import Instance, InstanceVersion, Series, Study
from vetclinic.audit.models import Channel
from vetclinic.audit.services import Actor, audit_record
from vetclinic.cache import Kept

log = logging.getLogger(__name__)

# Pixel Data, Float Pixel Data, Double Float Pixel Data: an image carries one of them.
PIXEL_DATA = {0x7FE00010, 0x7FE00008, 0x7FE00009}


class StoreRefused(Exception):
    """A C-STORE we must not acknowledge: a DIMSE failure status and its Error Comment."""

    def __init__(self, status, comment):
        super().__init__(comment)
        self.status = status
        self.comment = error_comment(comment)


class Arriving:
    """An object whose data set is still arriving (a C-STORE's fragments, PS3.8 E.2), written
    to storage piece by piece as it comes, so that the disk works while the network does.
    Nothing is durable or acknowledged until instance_receive has checked the whole of it and
    committed it; until then it is a part file that is never indexed (storage.object_writer)."""

    def __init__(self, *, sop_class_uid, sop_instance_uid, transfer_syntax, calling_ae):
        self.sop_instance_uid, self.transfer_syntax = str(sop_instance_uid), str(transfer_syntax)
        self.received_at = now()
        self.key = storage.instance_key(self.sop_instance_uid, self.received_at)
        self.file_meta = _file_meta(sop_class_uid, sop_instance_uid, transfer_syntax, calling_ae)
        self.size = 0  # data set bytes written
        self.error = None
        try:
            self.writer = storage.object_writer(self.key)
            self.writer.write(self.file_meta)
        except Exception as error:
            self.writer = None
            self.error = _bare(error)  # refused (out of resources) when the object is complete

    @staticmethod
    def fits(sop_instance_uid):
        """Whether a request's SOP Instance UID can name a storage key before the data set
        that should carry the same UID is read: a UID (PS3.5 9.1), nothing else."""
        return integrity.is_uid(str(sop_instance_uid or ""))

    def write(self, piece):
        if self.error is not None:
            return
        try:
            self.writer.write(piece)
            self.size += len(piece)
        except Exception as error:  # a full disk: the C-STORE is refused once it is complete
            self.error = _bare(error)
            self.abort()

    def commit(self):
        if self.error is not None:
            raise self.error
        return self.writer.commit()

    def abort(self):
        """Throw away what was written (a refused, failed or never finished object)."""
        writer, self.writer = self.writer, None
        if writer is not None:
            try:
                writer.abort()
            except OSError:
                log.exception("could not remove the part of %s", self.key)


def _bare(error):
    """``error`` without its traceback, to be kept past the write that raised it. The
    traceback's frames hold the piece written, a view of the association's receive buffer
    (ae.FastDIMSE._store_stream): a BytesIO with a view on it cannot grow, so the next fragment
    of the data set failed to decode and the association was aborted (a full disk did that)."""
    error.__context__ = error.__cause__ = None
    return error.with_traceback(None)


def instance_receive(
    *, data, transfer_syntax, sop_class_uid, sop_instance_uid, calling_ae, file_meta_bytes=None, batch=None,
    arriving=None,
):  # fmt: skip
    """Check one received object, keep it durably, queue its indexing; return its storage key.

    Raises StoreRefused for anything that must not be acknowledged. The data set bytes are
    stored as they came (no decode and re-encode), behind our File Meta Information (made here
    unless ``file_meta_bytes`` brings it). ``arriving`` (an Arriving) has written them to storage
    already as they came off the wire: it is committed or thrown away here. The indexing message
    joins ``batch`` (an IngestBatch: one per association) or goes at once.
    """
    if arriving is not None and arriving.error is None and (
        arriving.size != len(data) or arriving.sop_instance_uid != str(sop_instance_uid)
        or arriving.transfer_syntax != str(transfer_syntax)
    ):  # fmt: skip
        arriving.abort()  # not these bytes after all: store them the ordinary way
        arriving = None
    # (An arriving object whose writing failed is refused below, when it is committed.)
    try:
        ds = _checked_header(data, transfer_syntax)
        for keyword in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"):
            if not ds.get(keyword):
                raise StoreRefused(DATASET_DOES_NOT_MATCH_SOP_CLASS, f"{keyword} is missing")
            # PS3.5 9.1: at most 64 characters, digits and dots. A longer one does not fit the
            # index (nor a storage key): acknowledged, it could never be indexed.
            if not integrity.is_uid(ds[keyword].value):
                raise StoreRefused(DATASET_DOES_NOT_MATCH_SOP_CLASS, f"{keyword} is not a valid UID")
        if str(ds.SOPInstanceUID) != str(sop_instance_uid):
            raise StoreRefused(DATASET_DOES_NOT_MATCH_SOP_CLASS, "SOP Instance UID differs from the request's")
        if str(ds.SOPClassUID) != str(sop_class_uid):
            raise StoreRefused(DATASET_DOES_NOT_MATCH_SOP_CLASS, "SOP Class UID differs from the request's")
        try:
            summary = header_summary(ds, transfer_syntax_uid=transfer_syntax)
        except Exception as error:  # a value pydicom cannot decode (an unknown VR, a 3-byte US)
            raise StoreRefused(CANNOT_UNDERSTAND, f"Unreadable data set: {error}") from None
    except StoreRefused:
        if arriving is not None:
            arriving.abort()
        raise
    try:
        if arriving is not None:
            key, received_at, file_meta_size = arriving.key, arriving.received_at, len(arriving.file_meta)
            arriving.commit()
        else:
            if file_meta_bytes is None:
                file_meta_bytes = _file_meta(sop_class_uid, sop_instance_uid, transfer_syntax, calling_ae)
            received_at = now()
            key, file_meta_size = storage.instance_key(str(sop_instance_uid), received_at), len(file_meta_bytes)
            storage.object_put(key, file_meta_bytes + data)
    except Exception as error:
        log.exception("storage failed for %s from %s", sop_instance_uid, calling_ae)
        raise StoreRefused(OUT_OF_RESOURCES, f"Storage failed: {error}") from None
    message = {
        "storage_key": key,
        "summary": summary,
        "received_from": calling_ae,
        "received_at": received_at.isoformat(),
        "file_size": file_meta_size + len(data),
    }
    if batch is None:
        instances_queue([message])
    else:
        batch.add(message)
    return key


def _file_meta(sop_class_uid, sop_instance_uid, transfer_syntax, calling_ae):
    """Preamble, 'DICM' and our File Meta Information (PS3.10 7.1), as pydicom would write it
    (Explicit VR Little Endian, tag order, group length first). Encoded here: pydicom's writer
    checked and converted each value again, and cost more than the storage write."""
    elements = b"".join([
        _meta_element(0x0001, b"OB", b"\x00\x01"),  # File Meta Information Version
        _meta_element(0x0002, b"UI", str(sop_class_uid)),
        _meta_element(0x0003, b"UI", str(sop_instance_uid)),
        _meta_element(0x0010, b"UI", str(transfer_syntax)),
        _meta_element(0x0012, b"UI", PYNETDICOM_IMPLEMENTATION_UID),
        _meta_element(0x0013, b"SH", PYNETDICOM_IMPLEMENTATION_VERSION),
        _meta_element(0x0016, b"AE", calling_ae),  # Source Application Entity Title
    ])  # fmt: skip
    return b"\x00" * 128 + b"DICM" + _meta_element(0x0000, b"UL", struct.pack("<I", len(elements))) + elements


def _meta_element(element, vr, value):
    if isinstance(value, str):
        value = value.encode("ascii", "replace")
    if len(value) % 2:  # PS3.5 6.2: even lengths; UIDs pad with NUL, text with a space
        value += b"\x00" if vr == b"UI" else b" "
    if vr == b"OB":  # PS3.5 7.1.2: a reserved field and a 4-byte length
        return struct.pack("<HH2s2xI", 0x0002, element, vr, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


# What the index needs (imaging/dicom/datasets.header_summary), and the character set to read it.
HEADER_TAGS = {
    0x00080005, 0x00080016, 0x00080018, 0x00080020, 0x00080030, 0x00080050, 0x00080060, 0x00080090,
    0x00081010, 0x00081030, 0x0008103E, 0x00100010, 0x00100020, 0x00100030, 0x00102201, 0x00102202,
    0x00180015, 0x0020000D, 0x0020000E, 0x00200011, 0x00200013, 0x00280008, 0x00280010, 0x00280011,
}  # fmt: skip


def _checked_header(data, transfer_syntax):
    """The header elements the index needs, after checking that the whole data set arrived
    and that an image has its pixel data. One walk over the element headers does both; pydicom
    then decodes only those elements (a full parse cost more than the rest of the handler)."""
    ts = UID(transfer_syntax)
    try:
        if ts.is_deflated:
            data = integrity.inflate(data)
        elements = integrity.check(data, implicit=ts.is_implicit_VR, little=ts.is_little_endian)
        first = min(elements)
        if first < 0x00080000:
            # Command (0000) and File Meta (0002) elements are never part of a data set (PS3.5
            # 7.1, PS3.10 7.1), nor groups 0001-0007 (PS3.5 7.8.1). Kept behind our File Meta,
            # a Transfer Syntax UID there would be read in place of ours.
            raise integrity.Malformed(f"element ({first >> 16:04X},{first & 0xFFFF:04X}) in a data set")
        ds = Dataset()
        ds.set_original_encoding(ts.is_implicit_VR, ts.is_little_endian, None)
        for tag in HEADER_TAGS & elements.keys():
            vr, offset, length = elements[tag]
            ds[tag] = RawDataElement(
                Tag(tag), vr, length, data[offset : offset + length], offset, ts.is_implicit_VR, ts.is_little_endian
            )
        ds.get("SOPInstanceUID"), ds.get("SOPClassUID")  # decode now: a nonsense value must fail here
    except integrity.Malformed as error:
        raise StoreRefused(CANNOT_UNDERSTAND, f"Malformed data set: {error}") from None
    except Exception as error:  # pydicom raises many kinds on nonsense values
        raise StoreRefused(CANNOT_UNDERSTAND, f"Unreadable data set: {error}") from None
    if "Rows" in ds and not PIXEL_DATA & elements.keys():
        raise StoreRefused(CANNOT_UNDERSTAND, "Image without pixel data: the data set is cut off")
    return ds


# After a failure to queue, the broker is taken to be down for this long in this process.
broker_down = Kept("broker down", seconds=30, most=1)


def instances_queue(messages):
    """Queue indexing messages as one task. A broker that is down must not fail a stored image:
    the periodic sweep indexes whatever the queue missed, so after one failure we stop trying
    for a while."""
    if not messages or "down" in broker_down:
        return
    try:
        # By name: tasks import services, never the reverse (STYLE.md).
        current_app.send_task("imaging.tasks.instances_ingest", args=[messages], retry=False)
    except Exception:
        broker_down.set("down", True)
        log.exception("could not queue indexing of %s objects; the sweep will index them", len(messages))


class IngestBatch:
    """An association's indexing messages, queued in groups: one task per ``size`` objects or
    ``age`` seconds (checked as objects arrive), and the rest when the association ends. A
    task per object cost the worker more than indexing the object. Objects are added on the
    association's DUL thread and the rest flushed on its own thread when it is released or
    aborted (imaging/dicom/ae.py, handlers.py): a lock keeps a message from falling between."""

    def __init__(self, size=50, age=0.5):
        self.size, self.age = size, age
        self.messages = []
        self.started = 0.0
        self.lock = threading.Lock()

    def add(self, message):
        with self.lock:
            if not self.messages:
                self.started = time.monotonic()
            self.messages.append(message)
            full = len(self.messages) >= self.size or time.monotonic() - self.started >= self.age
        if full:
            self.flush()

    def flush(self):
        with self.lock:
            messages, self.messages = self.messages, []
        instances_queue(messages)


def _summary_from_storage(key):
    data = storage.object_get(key)
    ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    return header_summary(ds, transfer_syntax_uid=ds.file_meta.TransferSyntaxUID), len(data)


def _same_object(key_a, key_b):
    return storage.object_get(key_a) == storage.object_get(key_b)


class Received(NamedTuple):
    """One stored object to index: an indexing message, its summary read and times parsed."""

    storage_key: str
    summary: dict
    received_from: str
    received_at: datetime
    file_size: int

    @property
    def sop_instance_uid(self):
        return self.summary["sop_instance_uid"]

    @property
    def actor(self):
        return Actor(channel=Channel.DICOM, name=self.received_from)


def _received(*, storage_key, summary=None, received_from="", received_at=None, file_size=None):
    if summary is None:
        summary, file_size = _summary_from_storage(storage_key)
    if file_size is None:
        file_size = storage.default_storage.size(storage_key)
    received_at = datetime.fromisoformat(received_at) if received_at else now()
    return Received(storage_key, summary, received_from, received_at, file_size)


def instances_index(*, messages):
    """Index a batch of stored objects in one transaction; returns their Instance rows, in the
    messages' order. Idempotent: the same key again, or the same object under a new key,
    changes nothing; a different object under a known SOP Instance UID becomes a new version
    of it (the old one kept) and flags the study.

    The common case, an object whose UID is new, costs no query of its own: one query finds
    which UIDs are indexed already, series and studies are looked up once per distinct UID,
    and the new rows go in with one INSERT (a row a query cost more than the rest of the
    ingest). Objects whose UID is known, or came earlier in the batch, then go the slow way,
    one at a time in the order received. A failure rolls all back, and the retry finds what
    is indexed already; another worker inserting the same instance meanwhile makes the INSERT
    fail (IntegrityError), and the task retries (imaging/tasks.py).
    """
    received = [_received(**message) for message in messages]
    # The commit waits for its WAL flush (synchronous_commit stays on): the task is acknowledged
    # once it returns, so a commit PostgreSQL could still lose in a crash would leave objects
    # unindexed with nothing queued to index them until the sweep. One flush per batch of up to
    # 50 objects costs the ingest next to nothing (README, Ingest benchmark).
    with transaction.atomic():
        indexed = {
            instance.sop_instance_uid: instance
            for instance in Instance.objects.select_for_update().filter(
                sop_instance_uid__in={item.sop_instance_uid for item in received}
            )
        }
        new, again = {}, []
        for item in received:
            if item.sop_instance_uid in indexed or item.sop_instance_uid in new:
                again.append(item)
            else:
                new[item.sop_instance_uid] = item
        if new:
            indexed.update(_instances_create(list(new.values())))
        for item in again:
            indexed[item.sop_instance_uid] = _instance_index_again(indexed[item.sop_instance_uid], item)
        return [indexed[item.sop_instance_uid] for item in received]


def instance_index(*, storage_key, summary=None, received_from="", received_at=None, file_size=None):
    """Index one stored object (the sweep, ``manage.py reindex``): a batch of one."""
    message = {
        "storage_key": storage_key, "summary": summary, "received_from": received_from,
        "received_at": received_at, "file_size": file_size,
    }  # fmt: skip
    return instances_index(messages=[message])[0]


def _instances_create(items):
    """Index objects whose SOP Instance UIDs are new: their series (and studies) first, then
    the instances in one INSERT; then each new study is recorded and linked to its animal."""
    series_by_uid, studies_created = _series_for(items)
    instances = Instance.objects.bulk_create([
        Instance(
            series=series_by_uid[item.summary["series_instance_uid"]],
            sop_instance_uid=item.sop_instance_uid,
            sop_class_uid=item.summary["sop_class_uid"],
            transfer_syntax_uid=item.summary["transfer_syntax_uid"],
            instance_number=item.summary["instance_number"],
            rows=item.summary["rows"],
            columns=item.summary["columns"],
            number_of_frames=item.summary["number_of_frames"],
            file_size=item.file_size,
            storage_key=item.storage_key,
            received_from=item.received_from,
            received_at=item.received_at,
        )
        for item in items
    ])  # fmt: skip
    for study, item in studies_created:
        actor = item.actor
        audit_record(actor=actor, instance=study, action="receive", changes={"study": [None, str(study)]})
        study_link(study=study, actor=actor)
    return {instance.sop_instance_uid: instance for instance in instances}


def _series_for(items):
    """The series of new objects by Series Instance UID, found with one query; a series not
    found is made from its first object (with its study, if that is new too). Returns them
    and the studies made, each with the object that brought it."""
    first = {}
    for item in items:
        first.setdefault(item.summary["series_instance_uid"], item)
    series_by_uid = {series.series_instance_uid: series for series in Series.objects.filter(series_instance_uid__in=first)}
    # In UID order, as every worker does: two making the same series wait for each other
    # instead of deadlocking.
    missing = [item for uid, item in sorted(first.items()) if uid not in series_by_uid]
    if not missing:
        return series_by_uid, []
    studies_by_uid, studies_created = _studies_for(missing)
    for item in missing:
        summary = item.summary
        series, created = Series.objects.get_or_create(
            series_instance_uid=summary["series_instance_uid"],
            defaults={
                "study": studies_by_uid[summary["study_instance_uid"]], "modality": summary["modality"],
                "series_number": summary["series_number"], "description": summary["series_description"],
                "body_part": summary["body_part"], "station_name": summary["station_name"],
                "received_from": item.received_from,
            },
        )  # fmt: skip
        series_by_uid[series.series_instance_uid] = series
        if created:
            # Rendered a little later, from the middle image of what has arrived by then: a
            # series comes in over seconds, and its first image is rarely the telling one.
            transaction.on_commit(
                lambda pk=series.pk: current_app.send_task(
                    "imaging.tasks.thumbnail_render", args=[pk], countdown=settings.THUMBNAIL_DELAY
                )
            )
    return series_by_uid, studies_created


def _studies_for(items):
    """The studies of new series by Study Instance UID, found with one query; a study not
    found is made from its first object. Returns them and the (study, object) pairs made."""
    first = {}
    for item in items:
        first.setdefault(item.summary["study_instance_uid"], item)
    studies_by_uid = {study.study_instance_uid: study for study in Study.objects.filter(study_instance_uid__in=first)}
    created = []
    for uid, item in sorted(first.items()):  # in UID order, as for series
        if uid in studies_by_uid:
            continue
        # get_or_create: another worker may have made it since the query above.
        study, made = _study_for(item.summary, item.received_at)
        studies_by_uid[uid] = study
        if made:
            created.append((study, item))
    return studies_by_uid, created


def _instance_index_again(instance, item):
    """An object whose SOP Instance UID is indexed already."""
    if instance.storage_key == item.storage_key or InstanceVersion.objects.filter(storage_key=item.storage_key).exists():
        return instance  # delivered twice
    if _same_object(instance.storage_key, item.storage_key):
        storage.object_delete(item.storage_key)  # sent twice: one copy is enough
        return instance
    return _instance_replace(
        instance, item.storage_key, item.summary, item.received_from, item.received_at, item.file_size, item.actor
    )


def _study_for(summary, received_at):
    study_date, study_time = summary_dates(summary)
    return Study.objects.get_or_create(
        study_instance_uid=summary["study_instance_uid"],
        defaults={
            "accession_number": summary["accession_number"], "study_date": study_date, "study_time": study_time,
            "description": summary["study_description"], "referring_physician": summary["referring_physician"],
            "dicom_patient_id": summary["patient_id"], "dicom_patient_name": summary["patient_name"],
            "dicom_species": summary["species"], "dicom_birth_date": birth_date(summary),
            "received_at": received_at,
        },
    )  # fmt: skip


def _instance_replace(instance, storage_key, summary, received_from, received_at, file_size, actor):
    InstanceVersion.objects.create(
        instance=instance, version=instance.version, storage_key=instance.storage_key,
        file_size=instance.file_size, received_from=instance.received_from, received_at=instance.received_at,
        reason=InstanceVersion.Reason.REPLACED,
    )  # fmt: skip
    instance.version += 1
    instance.storage_key = storage_key
    instance.file_size = file_size
    instance.received_from = received_from
    instance.received_at = received_at
    instance.transfer_syntax_uid = summary["transfer_syntax_uid"]
    instance.save()
    study = instance.series.study
    study.flag = f"Instance {instance.sop_instance_uid} was replaced by a different object (version {instance.version})"[:200]
    study.updated = now()
    study.save(update_fields=["flag", "updated"])
    audit_record(
        actor=actor, instance=study, action="instance_replace",
        changes={"instance": [instance.sop_instance_uid, f"version {instance.version}"]},
    )  # fmt: skip
    return instance


def storage_sweep(*, days=None, min_age_seconds=60):
    """Index every stored object the index lacks (the broker was down, a worker died).

    ``days``: only objects received in the last so many days (the periodic sweep); None: all.
    Returns how many it indexed.
    """
    prefixes = ["dicom"]
    if days is not None:
        today = now()
        prefixes = [f"dicom/{today - timedelta(days=n):%Y/%m/%d}" for n in range(days)]
    indexed = 0
    cutoff = now() - timedelta(seconds=min_age_seconds)
    stale = now() - timedelta(hours=1)
    for prefix in prefixes:
        if not storage.folder_exists(prefix):  # on S3 too
            continue
        keys = list(storage.keys_under(prefix))
        known = set(Instance.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True))
        known |= set(InstanceVersion.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True))
        for key in keys:
            if key in known or storage.default_storage.get_modified_time(key) > cutoff:
                continue
            try:
                instance_index(storage_key=key, received_from="sweep")
                indexed += 1
            except Exception:
                log.exception("sweep could not index %s", key)
        # A transfer the listener never finished (it was killed mid-image): never acknowledged,
        # so the sender sends it again; its part file is only litter.
        for part in storage.keys_under(prefix, parts=True):
            if storage.default_storage.get_modified_time(part) < stale:
                storage.object_delete(part)
                log.warning("sweep removed %s, an object never received whole", part)
    return indexed

