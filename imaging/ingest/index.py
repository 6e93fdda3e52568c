"""Indexing what is stored (the Celery side of ingest).

``instances_index`` indexes a batch of stored objects, idempotent on their SOP Instance UIDs,
and links each new study to its animal (linking.py). ``storage_sweep`` indexes whatever the
queue missed (Celery beat, ``manage.py reindex``).
"""

import io
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import NamedTuple, Required, TypedDict

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.dispatch import Signal
from django.utils.timezone import now
from pydicom.filereader import dcmread

from imaging.archive.metadata import metadata_keep
from imaging.dicom.records.header import HeaderSummary, birth_date, header_summary, summary_dates
from imaging.ingest import storage
from imaging.ingest.linking import study_link
from imaging.models import Instance, InstanceVersion, Series, Study
from vetclinic.audit.models import Channel
from vetclinic.audit.services import Actor, audit_record

log = logging.getLogger(__name__)
# Text SR documents (PS3.4 B.5.1: Basic Text, Enhanced, Comprehensive SR): a consult's answer may
# come as one (sharing/answers.py). VetPACS's own measurement SR (Comprehensive 3D) and key object
# documents are not among them.
TEXT_SR_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33",
})  # fmt: skip
# Sent after the commit that indexed new text SR documents (``instance_ids``). A signal, so that
# imaging/ does not import the apps built on it (sharing/ listens: a consult's answer).
text_srs_indexed = Signal()


class Sender(TypedDict):
    """Who sent an object when that is not a DICOM node (received_from, an AE title, names
    one): an API client or a staff member storing over STOW-RS. The audit log's actor."""

    channel: str  # vetclinic.audit.models.Channel
    name: str  # the API client's name, or the staff member's user name
    user_id: int | None  # the staff member


class IndexMessage(TypedDict, total=False):
    """What the ingest task carries for one stored object, as JSON (receive.py makes it). Only
    the key is required: what a message leaves out (the sweep's, one queued by hand) is read
    from the stored object."""

    storage_key: Required[str]
    summary: HeaderSummary | None
    received_from: str  # the sender's AE title, or the channel that brought it ("STOW-RS")
    received_at: str | None  # ISO 8601
    file_size: int | None
    sender: Sender  # who, when not the AE title


def _summary_from_storage(key: str) -> tuple[HeaderSummary, int]:
    data = storage.object_get(key)
    ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    return header_summary(ds, transfer_syntax_uid=ds.file_meta.TransferSyntaxUID), len(data)


def _same_object(key_a: str, key_b: str) -> bool:
    return storage.object_get(key_a) == storage.object_get(key_b)


class Received(NamedTuple):
    """One stored object to index: an indexing message, its summary read and times parsed."""

    storage_key: str
    summary: HeaderSummary
    received_from: str
    received_at: datetime
    file_size: int
    sender: Sender | None = None

    @property
    def sop_instance_uid(self) -> str:
        return self.summary["sop_instance_uid"]

    @property
    def actor(self) -> Actor:
        """Who the audit log names: the API client or staff member who sent it, else its AE title."""
        if self.sender is None:
            return Actor(channel=Channel.DICOM, name=self.received_from)
        user_id = self.sender["user_id"]
        user = User.objects.filter(pk=user_id).first() if user_id is not None else None
        return Actor(channel=self.sender["channel"], user=user, name=self.sender["name"])


def _received(
    *,
    storage_key: str,
    summary: HeaderSummary | None = None,
    received_from: str = "",
    received_at: str | None = None,
    file_size: int | None = None,
    sender: Sender | None = None,
) -> Received:
    if summary is None:
        summary, file_size = _summary_from_storage(storage_key)
    if file_size is None:
        file_size = storage.default_storage.size(storage_key)
    at = datetime.fromisoformat(received_at) if received_at else now()
    return Received(storage_key, summary, received_from, at, file_size, sender)


def instances_index(*, messages: Iterable[IndexMessage]) -> list[Instance]:
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
    fail (IntegrityError), and the task retries (imaging/ingest/tasks.py).
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
        new: dict[str, Received] = {}
        again: list[Received] = []
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


def instance_index(
    *,
    storage_key: str,
    summary: HeaderSummary | None = None,
    received_from: str = "",
    received_at: str | None = None,
    file_size: int | None = None,
) -> Instance:
    """Index one stored object (the sweep, ``manage.py reindex``): a batch of one."""
    message: IndexMessage = {
        "storage_key": storage_key, "summary": summary, "received_from": received_from,
        "received_at": received_at, "file_size": file_size,
    }  # fmt: skip
    return instances_index(messages=[message])[0]


def _instances_create(items: list[Received]) -> dict[str, Instance]:
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
    # Their DICOM JSON for WADO-RS /metadata is kept by a task after the commit: reading each
    # header again costs about 1 ms an object, which would slow the index (and the study's
    # appearing in the lists) by a third for small images. /metadata computes and keeps any
    # document not kept yet when it is read, so nothing waits for the task to be right.
    transaction.on_commit(partial(_metadata_queue, [instance.pk for instance in instances]))
    # A text SR may be a consult's answer (sharing/answers.py): told once it is committed.
    text_srs = [instance.pk for instance in instances if instance.sop_class_uid in TEXT_SR_CLASSES]
    if text_srs:
        transaction.on_commit(partial(_text_srs_indexed, text_srs))
    for study, item in studies_created:
        actor = item.actor
        audit_record(actor=actor, instance=study, action="receive", changes={"study": [None, str(study)]})
        study_link(study=study, actor=actor)
    return {instance.sop_instance_uid: instance for instance in instances}


def _series_for(items: list[Received]) -> tuple[dict[str, Series], list[tuple[Study, Received]]]:
    """The series of new objects by Series Instance UID, found with one query; a series not
    found is made from its first object (with its study, if that is new too). Returns them
    and the studies made, each with the object that brought it."""
    first: dict[str, Received] = {}
    for item in items:
        first.setdefault(item.summary["series_instance_uid"], item)
    series_by_uid = {
        series.series_instance_uid: series for series in Series.objects.filter(series_instance_uid__in=first)
    }
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
            transaction.on_commit(partial(_thumbnail_queue, series.pk))
    return series_by_uid, studies_created


def _text_srs_indexed(instance_ids: list[int]) -> None:
    """After the commit: told to whoever listens (sharing/apps.py files a consult's answer); a
    failure there loses no object (it is indexed), only what the listener does with it."""
    for receiver, outcome in text_srs_indexed.send_robust(sender=Instance, instance_ids=instance_ids):
        if isinstance(outcome, Exception):
            log.error("text SRs %s: %s failed", instance_ids[:5], receiver, exc_info=outcome)


def _metadata_queue(instance_ids: list[int]) -> None:
    current_app.send_task(
        "imaging.tasks.metadata_keep", args=[instance_ids], countdown=settings.METADATA_DELAY
    )


def _thumbnail_queue(series_id: int) -> None:
    current_app.send_task(
        "imaging.tasks.thumbnail_render", args=[series_id], countdown=settings.THUMBNAIL_DELAY
    )


def _studies_for(items: list[Received]) -> tuple[dict[str, Study], list[tuple[Study, Received]]]:
    """The studies of new series by Study Instance UID, found with one query; a study not
    found is made from its first object. Returns them and the (study, object) pairs made."""
    first: dict[str, Received] = {}
    for item in items:
        first.setdefault(item.summary["study_instance_uid"], item)
    studies_by_uid = {
        study.study_instance_uid: study for study in Study.objects.filter(study_instance_uid__in=first)
    }
    created: list[tuple[Study, Received]] = []
    for uid, item in sorted(first.items()):  # in UID order, as for series
        if uid in studies_by_uid:
            continue
        # get_or_create: another worker may have made it since the query above.
        study, made = _study_for(item.summary, item.received_at)
        studies_by_uid[uid] = study
        if made:
            created.append((study, item))
    return studies_by_uid, created


def _instance_index_again(instance: Instance, item: Received) -> Instance:
    """An object whose SOP Instance UID is indexed already."""
    if (
        instance.storage_key == item.storage_key
        or InstanceVersion.objects.filter(storage_key=item.storage_key).exists()
    ):
        return instance  # delivered twice
    if _same_object(instance.storage_key, item.storage_key):
        storage.object_delete(item.storage_key)  # sent twice: one copy is enough
        return instance
    return _instance_replace(
        instance,
        item.storage_key,
        item.summary,
        item.received_from,
        item.received_at,
        item.file_size,
        item.actor,
    )


def _study_for(summary: HeaderSummary, received_at: datetime) -> tuple[Study, bool]:
    study_date, study_time = summary_dates(summary)
    return Study.objects.get_or_create(
        study_instance_uid=summary["study_instance_uid"],
        defaults={
            "accession_number": summary["accession_number"], "study_date": study_date, "study_time": study_time,
            "description": summary["study_description"], "referring_physician": summary["referring_physician"],
            "dicom_patient_id": summary["patient_id"], "dicom_patient_name": summary["patient_name"],
            "dicom_species": summary["species"], "dicom_birth_date": birth_date(summary),
            "study_id": summary.get("study_id", ""), "dicom_patient_sex": summary.get("patient_sex", ""),
            "dicom_breed": summary.get("breed", ""), "dicom_sex_neutered": summary.get("sex_neutered", ""),
            "dicom_responsible_person": summary.get("responsible_person", ""),
            "dicom_responsible_person_role": summary.get("responsible_person_role", ""),
            "received_at": received_at,
        },
    )  # fmt: skip


def _instance_replace(
    instance: Instance,
    storage_key: str,
    summary: HeaderSummary,
    received_from: str,
    received_at: datetime,
    file_size: int,
    actor: Actor,
) -> Instance:
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
    metadata_keep(instance_id=instance.pk, storage_key=storage_key)
    study = instance.series.study
    study.flag = f"Instance {instance.sop_instance_uid} was replaced by a different object (version {instance.version})"[
        :200
    ]
    study.updated = now()
    study.save(update_fields=["flag", "updated"])
    audit_record(
        actor=actor, instance=study, action="instance_replace",
        changes={"instance": [instance.sop_instance_uid, f"version {instance.version}"]},
    )  # fmt: skip
    return instance


def storage_sweep(*, days: int | None = None, min_age_seconds: float = 60) -> int:
    """Index every stored object the index lacks (the broker was down, a worker died).

    ``days``: only objects received in the last so many days (the periodic sweep); None: all.
    Returns how many it indexed.
    """
    prefixes = ["dicom"] if days is None else storage.day_prefixes(days)
    indexed = 0
    cutoff = now() - timedelta(seconds=min_age_seconds)
    stale = now() - timedelta(hours=1)
    for prefix in prefixes:
        if not storage.folder_exists(prefix):  # on S3 too
            continue
        keys = list(storage.keys_under(prefix))
        known = set(Instance.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True))
        known |= set(
            InstanceVersion.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True)
        )
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
