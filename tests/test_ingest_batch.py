"""Indexing a batch of stored objects at once, as the Celery task does (index.instances_index)."""

import types

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pydicom.uid import generate_uid

from imaging.archive.metadata import stored_document
from imaging.archive.tasks import metadata_keep_task
from imaging.ingest import index, storage
from imaging.ingest.index import instances_index
from imaging.ingest.queueing import IngestBatch
from imaging.ingest.receive import instance_receive
from imaging.models import Instance, InstanceMetadata, InstanceVersion, Series, Study
from tests.test_ingest import TEST_FILES, changed_copy, split
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def messages(storage_root, tmp_path):
    """Receive objects as the C-STORE handler does; returns a function that stores a copy of a
    bundled file (with changes) and gives back its indexing message, unqueued."""

    def receive(name="CT_small.dcm", path=None, **changes):
        batch = IngestBatch(size=10**6, age=10**6)  # never flushes: we index by hand
        meta, data, ds = split(path or changed_copy(tmp_path, name, **changes))
        instance_receive(
            source=data, file_meta_bytes=meta, transfer_syntax=ds.file_meta.TransferSyntaxUID,
            sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID, calling_ae="CTROOM", batch=batch,
        )  # fmt: skip
        [message] = batch.messages
        return message

    return receive


@pytest.fixture
def queued(monkeypatch):
    """What the index queued after its commits, by task: the series ids whose thumbnail it
    asked for, and the lists of instance ids whose metadata it asked to keep."""
    tasks = {"imaging.tasks.thumbnail_render": [], "imaging.tasks.metadata_keep": []}

    def send_task(name, args, countdown=None):
        tasks[name].extend(args)

    monkeypatch.setattr(index, "current_app", types.SimpleNamespace(send_task=send_task))
    return tasks


@pytest.fixture
def thumbnails_queued(queued):
    return queued["imaging.tasks.thumbnail_render"]


def test_a_batch_mixing_new_known_resent_and_replaced_objects_indexes_each_as_alone(
    messages,
    tmp_path,
    make_owner,
    make_patient,
    queued,
    thumbnails_queued,
    django_capture_on_commit_callbacks,
):
    biscuit = make_patient("Biscuit", owner=make_owner(), patient_id="PX-1")
    known_path = changed_copy(tmp_path, SOPInstanceUID=generate_uid())
    known = messages(path=known_path)
    mr = messages("MR_small.dcm")  # MR_small_RLE.dcm: the same SOP Instance UID, other bytes
    with django_capture_on_commit_callbacks(execute=True):
        instances_index(messages=[known, mr])
    thumbnails_queued.clear()

    study_a, study_b, series_a = generate_uid(), generate_uid(), generate_uid()
    new_1 = messages(StudyInstanceUID=study_a, SeriesInstanceUID=series_a, SOPInstanceUID=generate_uid())
    new_2 = messages(
        StudyInstanceUID=study_b, SeriesInstanceUID=generate_uid(), SOPInstanceUID=generate_uid(),
        PatientID="PX-1", PatientName="Hartley^Biscuit",
    )  # fmt: skip
    new_3 = messages(StudyInstanceUID=study_a, SeriesInstanceUID=series_a, SOPInstanceUID=generate_uid())
    known_resent = messages(path=known_path)  # the same bytes under a new key
    new_1_resent = _resend(messages, new_1)  # the same bytes again, in the same batch
    replaced = messages(path=TEST_FILES / "MR_small_RLE.dcm")
    batch = [new_1, known, new_2, known_resent, replaced, new_3, new_1_resent]

    with django_capture_on_commit_callbacks(execute=True):
        indexed = instances_index(messages=batch)

    assert [i.sop_instance_uid for i in indexed] == [m["summary"]["sop_instance_uid"] for m in batch]
    assert Instance.objects.count() == 5  # known, mr, new_1, new_2, new_3
    assert (
        Instance.objects.get(sop_instance_uid=new_1["summary"]["sop_instance_uid"]).storage_key
        == new_1["storage_key"]
    )
    assert (
        Instance.objects.get(sop_instance_uid=known["summary"]["sop_instance_uid"]).storage_key
        == known["storage_key"]
    )
    # Sent twice: one copy is enough. Delivered twice: the copy is the one indexed.
    assert not storage.default_storage.exists(known_resent["storage_key"])
    assert not storage.default_storage.exists(new_1_resent["storage_key"])
    assert storage.default_storage.exists(known["storage_key"])

    # The different object is a new version; the old one is kept, the study flagged and audited.
    mr_instance = Instance.objects.get(sop_instance_uid=mr["summary"]["sop_instance_uid"])
    assert (mr_instance.version, mr_instance.storage_key) == (2, replaced["storage_key"])
    assert mr_instance.transfer_syntax_uid == "1.2.840.10008.1.2.5"
    old = InstanceVersion.objects.get(instance=mr_instance)
    assert (old.version, old.storage_key, old.reason) == (
        1,
        mr["storage_key"],
        InstanceVersion.Reason.REPLACED,
    )
    assert "replaced by a different object (version 2)" in mr_instance.series.study.flag
    assert (
        AuditEntry.objects.filter(
            action="instance_replace", object_id=str(mr_instance.series.study_id)
        ).count()
        == 1
    )

    # Two new studies, each received (audited) and linked once; one series for new_1 and new_3.
    a, b = Study.objects.get(study_instance_uid=study_a), Study.objects.get(study_instance_uid=study_b)
    assert [AuditEntry.objects.filter(action="receive", object_id=str(s.pk)).count() for s in (a, b)] == [
        1,
        1,
    ]
    assert (a.link, a.patient) == (Study.Link.UNMATCHED, None)
    assert (b.link, b.patient) == (Study.Link.PATIENT_ID, biscuit)
    series = Series.objects.get(series_instance_uid=series_a)
    assert set(series.instances.values_list("storage_key", flat=True)) == {
        new_1["storage_key"],
        new_3["storage_key"],
    }
    assert sorted(thumbnails_queued) == sorted(
        Series.objects.filter(study__in=[a, b]).values_list("pk", flat=True)
    )
    assert Study.objects.count() == 4 and Series.objects.count() == 4

    # The new objects' metadata is kept by the task queued after the commit, not by the index
    # (it reads each header again); the replacing version's is kept at once.
    new_ids = Instance.objects.filter(series__study__in=[a, b]).values_list("pk", flat=True)
    [metadata_ids] = queued["imaging.tasks.metadata_keep"][-1:]
    assert sorted(metadata_ids) == sorted(new_ids)
    assert not InstanceMetadata.objects.filter(instance__in=new_ids).exists()
    assert InstanceMetadata.objects.get(instance=mr_instance).storage_key == replaced["storage_key"]
    assert metadata_keep_task(metadata_ids) == 3
    for kept in InstanceMetadata.objects.filter(instance__in=new_ids).select_related("instance"):
        assert kept.document == stored_document(kept.instance.storage_key)
    assert metadata_keep_task(metadata_ids) == 0  # delivered again: nothing to do


def _resend(messages, message):
    """The object of ``message`` received again, under a new key."""
    return messages(path=storage.default_storage.path(message["storage_key"]))


def test_a_batch_indexed_twice_changes_nothing_the_second_time(
    messages, thumbnails_queued, django_capture_on_commit_callbacks
):
    study = generate_uid()
    batch = [messages(StudyInstanceUID=study, SOPInstanceUID=generate_uid()) for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        first = instances_index(messages=batch)
    with django_capture_on_commit_callbacks(execute=True):
        second = instances_index(messages=batch)  # the task delivered again (acks late)
    assert [i.pk for i in first] == [i.pk for i in second]
    assert Instance.objects.count() == 3 and all(i.version == 1 for i in Instance.objects.all())
    assert AuditEntry.objects.filter(action="receive").count() == 1
    assert len(thumbnails_queued) == 1


@pytest.mark.parametrize("into", ["a new study", "a known series"])
def test_the_queries_of_a_batch_do_not_grow_with_its_size(messages, thumbnails_queued, into):
    instances_index(messages=[messages(SOPInstanceUID=generate_uid())])  # warm caches (content types)

    def queries(size):
        study, series = generate_uid(), generate_uid()
        if into == "a known series":
            instances_index(
                messages=[
                    messages(StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID=generate_uid())
                ]
            )
        batch = [
            messages(StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID=generate_uid())
            for _ in range(size)
        ]
        with CaptureQueriesContext(connection) as captured:
            indexed = instances_index(messages=batch)
        assert len({i.pk for i in indexed}) == size
        return len(captured.captured_queries)

    small, large = queries(2), queries(40)
    assert small == large
    assert Instance.objects.count() == 1 + 42 + (2 if into == "a known series" else 0)
