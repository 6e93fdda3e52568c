"""Receiving and indexing without sockets: the services the C-STORE handler and the task call."""

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from imaging.ingest import storage
from imaging.ingest.index import instance_index, instances_index, storage_sweep
from imaging.ingest.receive import (
    IncomingObject,
    ObjectRefused,
    Refusal,
    file_receive,
    files_receive,
    instance_receive,
)  # fmt: skip
from imaging.models import Instance, Study
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.django_db
TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def split(path):
    """(file meta bytes, data set bytes, data set) of a Part 10 file."""
    raw = Path(path).read_bytes()
    fp = io.BytesIO(raw)
    pydicom.filereader.read_preamble(fp, False)
    pydicom.filereader._read_file_meta_info(fp)
    return raw[: fp.tell()], raw[fp.tell() :], pydicom.dcmread(path)


def receive_raw(meta, data, ds):
    """What the C-STORE handler does with these bytes, announced as ``ds`` says."""
    return instance_receive(
        source=data, file_meta_bytes=meta, transfer_syntax=ds.file_meta.TransferSyntaxUID,
        sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID, calling_ae="CTROOM",
    )  # fmt: skip


def receive(path):
    return receive_raw(*split(path))


def changed_copy(folder, name="CT_small.dcm", **changes):
    ds = pydicom.dcmread(TEST_FILES / name)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    if "SOPInstanceUID" in changes:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = Path(folder) / f"{generate_uid()}.dcm"
    ds.save_as(path)
    return path


@pytest.fixture
def received(storage_root, tmp_path):
    """Store an object through instance_receive and index it as the task does. (Nothing
    consumes the queued message here; a worker is tested in test_dicom_store.py.)"""

    def store(name="CT_small.dcm", **changes):
        key = receive(changed_copy(tmp_path, name, **changes))
        return instance_index(storage_key=key, received_from="CTROOM")

    return store


def test_a_received_object_is_stored_and_indexed_with_what_viewers_need(received):
    instance = received()
    study = instance.series.study
    assert (instance.rows, instance.columns, instance.number_of_frames) == (128, 128, 1)
    assert instance.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert instance.file_size == len(storage.object_get(instance.storage_key))
    assert instance.series.modality == "CT"
    assert study.study_date.isoformat() == "2004-01-19"
    assert study.dicom_patient_name == "CompressedSamples^CT1"
    assert study.link == Study.Link.UNMATCHED
    assert AuditEntry.objects.filter(action="receive", object_id=str(study.pk), channel="dicom").exists()


def test_indexing_the_same_key_again_changes_nothing(received):
    instance = received()
    again = instance_index(storage_key=instance.storage_key, received_from="CTROOM")
    assert again.pk == instance.pk
    assert Instance.objects.count() == 1
    assert again.version == 1


@pytest.mark.parametrize(
    "data, reason, comment",
    [
        (b"", Refusal.UNREADABLE, "Malformed data set: empty"),
        (b"\x08\x00\x18\x00UI\x40\x00" + b"1.2" * 5, Refusal.UNREADABLE, "Malformed data set"),
    ],
)
def test_malformed_data_is_refused_with_a_reason(storage_root, data, reason, comment):
    meta, _, ds = split(TEST_FILES / "CT_small.dcm")
    with pytest.raises(ObjectRefused) as refused:
        receive_raw(meta, data, ds)
    assert refused.value.reason == reason
    assert refused.value.detail.startswith(comment)
    assert not list(storage_root.rglob("*.dcm"))


def test_an_image_cut_off_before_its_pixel_data_is_refused(storage_root):
    meta, data, ds = split(TEST_FILES / "CT_small.dcm")
    pixel_data_at = data.index(b"\xe0\x7f\x10\x00")
    with pytest.raises(ObjectRefused) as refused:
        receive_raw(meta, data[:pixel_data_at], ds)
    assert refused.value.detail == "Image without pixel data: the data set is cut off"


def test_a_data_set_without_its_study_is_refused(storage_root, tmp_path):
    meta, data, ds = split(changed_copy(tmp_path, StudyInstanceUID=None))
    with pytest.raises(ObjectRefused) as refused:
        receive_raw(meta, data, ds)
    assert refused.value.reason == Refusal.DOES_NOT_MATCH
    assert refused.value.detail == "StudyInstanceUID is missing"


# Linking by Patient ID (imaging/ingest/linking.py): the animal's name and species must agree.
@pytest.mark.parametrize(
    "name, species, linked, flag",
    [
        ("Hartley^Biscuit", "Canis lupus familiaris", True, ""),
        ("HARTLEY^BISCUIT", "", True, ""),  # no species said: nothing contradicts
        ("Hartley^Biscuit", "Dog", True, ""),
        ("Hartley^Rex", "Canis lupus familiaris", False, "but the images name 'Hartley^Rex'"),
        ("Hartley^Biscuit", "Felis catus", False, "but the images say 'Felis catus'"),
    ],
)
def test_a_study_links_by_patient_id_only_when_name_and_species_agree(
    received, make_owner, make_patient, name, species, linked, flag
):
    biscuit = make_patient("Biscuit", owner=make_owner(), patient_id="PX-1")
    changes = {
        "PatientID": "PX-1",
        "PatientName": name,
        "StudyInstanceUID": generate_uid(),
        "SOPInstanceUID": generate_uid(),
    }
    if species:
        changes["PatientSpeciesDescription"] = species
    study = received(**changes).series.study
    study.refresh_from_db()

    assert (study.patient_id == biscuit.pk) is linked
    assert study.link == (Study.Link.PATIENT_ID if linked else Study.Link.UNMATCHED)
    assert flag in study.flag


# Linking by order (imaging/ingest/linking.py): the accession number, then the Study Instance UID
# the worklist gave; the order then knows its images have arrived.
def test_a_study_links_to_its_order_by_accession_number_first(
    received, make_owner, make_patient, make_order, queued, django_capture_on_commit_callbacks
):
    biscuit = make_patient("Biscuit", owner=make_owner())
    order = make_order(biscuit, "DX-THX2")
    other = make_order(make_patient("Rex"), "DX-THX2")
    with django_capture_on_commit_callbacks(execute=True):
        study = received(
            AccessionNumber=order.accession_number, StudyInstanceUID=other.study_instance_uid,
            PatientID=biscuit.patient_id, PatientName="HARTLEY^BISCUIT", SOPInstanceUID=generate_uid(),
        ).series.study  # fmt: skip
    study.refresh_from_db()
    order.refresh_from_db()
    assert (study.patient, study.order, study.link) == (biscuit, order, Study.Link.ORDER)
    assert order.status == "in_progress" and order.images_received_at is not None
    assert [c.note for c in order.status_changes.all()][-1] == "images received"
    assert queued == []  # the images already say what the record says: nothing to rewrite


def test_a_study_links_by_the_worklists_study_uid_and_headers_follow_the_record(
    received, make_owner, make_patient, make_order, queued, django_capture_on_commit_callbacks
):
    biscuit = make_patient("Biscuit", owner=make_owner())
    order = make_order(biscuit, "DX-THX2")
    with django_capture_on_commit_callbacks(execute=True):
        study = received(
            AccessionNumber="", StudyInstanceUID=order.study_instance_uid, PatientID="TYPED-AT-MODALITY",
            PatientName="biscuit", SOPInstanceUID=generate_uid(),
        ).series.study  # fmt: skip
    study.refresh_from_db()
    assert (study.patient, study.order, study.link) == (biscuit, order, Study.Link.ORDER)
    assert study.pk in queued


def test_an_unknown_accession_number_falls_back_to_the_patient_id(received, make_owner, make_patient):
    biscuit = make_patient("Biscuit", owner=make_owner(), patient_id="PX-9")
    study = received(AccessionNumber="NOSUCH1", PatientID="PX-9", PatientName="Hartley^Biscuit",
                     SOPInstanceUID=generate_uid()).series.study  # fmt: skip
    study.refresh_from_db()
    assert (study.patient, study.order, study.link) == (biscuit, None, Study.Link.PATIENT_ID)


def test_a_study_for_a_merged_patient_id_links_to_the_survivor(received, actor, make_patient):
    from patients.services import patient_merge

    old, survivor = make_patient("Biscuit", patient_id="OLD-7"), make_patient("Biscuit")
    patient_merge(actor=actor, source=old, target=survivor)
    study = received(PatientID="OLD-7", PatientName="^Biscuit", SOPInstanceUID=generate_uid()).series.study
    study.refresh_from_db()
    assert study.patient == survivor


def test_the_sweep_indexes_what_the_queue_missed_and_only_that(received, storage_root):
    indexed = received()
    missed = receive(TEST_FILES / "MR_small.dcm")  # stored; its task never ran here

    assert storage_sweep(days=2, min_age_seconds=0) == 1
    assert Instance.objects.filter(storage_key=missed).exists()
    assert storage_sweep(days=2, min_age_seconds=0) == 0
    assert Instance.objects.count() == 2
    assert Instance.objects.get(pk=indexed.pk).version == 1


def test_the_series_thumbnail_is_drawn_from_its_middle_image(received):
    from imaging.ingest.thumbnails import series_thumbnail_render

    series_uid = generate_uid()
    instances = [
        received(SeriesInstanceUID=series_uid, SOPInstanceUID=generate_uid(), InstanceNumber=n)
        for n in (3, 1, 2)
    ]
    middle = next(i for i in instances if i.instance_number == 2)

    key = series_thumbnail_render(series_id=middle.series_id)
    assert key.endswith(f".{middle.pk}.png")
    assert storage.object_get(key).startswith(b"\x89PNG")


def receive_arriving(meta, data, ds, pieces=7):
    """What the C-STORE handler does when the fast path wrote the data set as it arrived."""
    arriving = IncomingObject(
        sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
        transfer_syntax=ds.file_meta.TransferSyntaxUID, calling_ae="CTROOM",
    )  # fmt: skip
    step = len(data) // pieces + 1
    for at in range(0, len(data), step):
        arriving.write(memoryview(data)[at : at + step])
    arriving.arrived(data)
    return arriving, instance_receive(
        source=arriving, transfer_syntax=ds.file_meta.TransferSyntaxUID, sop_class_uid=ds.SOPClassUID,
        sop_instance_uid=ds.SOPInstanceUID, calling_ae="CTROOM",
    )  # fmt: skip


def test_an_object_written_as_it_arrives_is_kept_as_one_written_whole(storage_root, tmp_path):
    meta, data, ds = split(changed_copy(tmp_path, SOPInstanceUID=generate_uid()))
    arriving, key = receive_arriving(meta, data, ds)

    assert key == arriving.key
    whole = instance_receive(
        source=data, transfer_syntax=ds.file_meta.TransferSyntaxUID, sop_class_uid=ds.SOPClassUID,
        sop_instance_uid=ds.SOPInstanceUID, calling_ae="CTROOM",
    )  # fmt: skip
    assert storage.object_get(key) == storage.object_get(whole)  # our file meta, then the bytes as sent
    assert pydicom.dcmread(io.BytesIO(storage.object_get(key))).SOPInstanceUID == ds.SOPInstanceUID
    assert not list(storage_root.rglob("*.part"))
    assert instance_index(storage_key=key, received_from="CTROOM").file_size == len(storage.object_get(key))


def test_an_object_written_as_it_arrives_and_then_refused_leaves_nothing(storage_root, tmp_path):
    meta, data, ds = split(changed_copy(tmp_path, SOPInstanceUID=generate_uid()))
    with pytest.raises(ObjectRefused) as refused:
        receive_arriving(meta, data[: len(data) // 2], ds)
    assert refused.value.reason == Refusal.UNREADABLE
    assert not [p for p in storage_root.rglob("*") if p.is_file()]


def test_the_sweep_indexes_no_part_file_and_removes_the_ones_left_for_an_hour(storage_root, tmp_path):
    import os
    import time

    meta, data, ds = split(changed_copy(tmp_path, SOPInstanceUID=generate_uid()))
    fresh = IncomingObject(sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
                     transfer_syntax=ds.file_meta.TransferSyntaxUID, calling_ae="CTROOM")  # fmt: skip
    fresh.write(data)
    old = IncomingObject(sop_class_uid=ds.SOPClassUID, sop_instance_uid=generate_uid(),
                   transfer_syntax=ds.file_meta.TransferSyntaxUID, calling_ae="CTROOM")  # fmt: skip
    old.write(data)
    old_part = Path(storage.default_storage.path(old.key + storage.PART))
    os.utime(old_part, (time.time() - 7200, time.time() - 7200))  # a listener killed two hours ago

    assert storage_sweep(days=2, min_age_seconds=0) == 0
    assert Instance.objects.count() == 0
    assert not old_part.exists()
    assert Path(storage.default_storage.path(fresh.key + storage.PART)).exists()  # still arriving


def test_a_storage_that_takes_whole_objects_gets_the_arrived_pieces_in_one_save(settings, tmp_path):
    """S3 and the like (anything but our local disk storage): storage.BufferedWriter."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    meta, data, ds = split(changed_copy(tmp_path, SOPInstanceUID=generate_uid()))
    arriving, key = receive_arriving(meta, data, ds)

    assert type(arriving.writer).__name__ == "BufferedWriter"
    assert storage.object_get(key) == arriving.file_meta + data


def test_an_object_whose_writing_fails_while_it_arrives_is_refused_out_of_resources(
    storage_root, tmp_path, monkeypatch
):
    """The disk fills up mid-image: refused out of resources (a C-STORE's 0xA700), nothing is left."""
    meta, data, ds = split(changed_copy(tmp_path, SOPInstanceUID=generate_uid()))
    writes = []

    def full(self, piece):
        writes.append(len(piece))
        if len(writes) > 2:  # the file meta and one piece went in
            raise OSError(28, "No space left on device")
        return original(self, piece)

    original = storage.DurableFileWriter.write
    monkeypatch.setattr(storage.DurableFileWriter, "write", full)
    with pytest.raises(ObjectRefused) as refused:
        receive_arriving(meta, data, ds)
    assert refused.value.reason == Refusal.OUT_OF_RESOURCES
    assert "No space left" in refused.value.detail
    assert not [p for p in storage_root.rglob("*") if p.is_file()]


def test_an_object_from_a_part10_file_is_kept_as_the_same_object_from_its_bytes(storage_root, tmp_path):
    """pynetdicom writes a C-STORE data set to a Part 10 file (STORE_RECV_CHUNKED_DATASET); a
    STOW-RS body part is one too. The data set is copied as it is, behind our File Meta."""
    path = changed_copy(tmp_path, SOPInstanceUID=generate_uid())
    _meta, data, ds = split(path)
    announced = dict(transfer_syntax=ds.file_meta.TransferSyntaxUID, sop_class_uid=ds.SOPClassUID,
                     sop_instance_uid=ds.SOPInstanceUID, calling_ae="CTROOM")  # fmt: skip

    from_file = instance_receive(source=path, **announced)
    from_bytes = instance_receive(source=data, **announced)

    assert storage.object_get(from_file) == storage.object_get(from_bytes)
    assert storage.object_get(from_file).endswith(data)
    assert (
        pydicom.dcmread(io.BytesIO(storage.object_get(from_file))).file_meta.SourceApplicationEntityTitle
        == "CTROOM"
    )


def test_a_file_that_is_not_part10_is_refused_as_unreadable(storage_root, tmp_path):
    path = tmp_path / "not.dcm"
    path.write_bytes(b"\x00" * 300)
    with pytest.raises(ObjectRefused) as refused:
        instance_receive(source=path, transfer_syntax="1.2.840.10008.1.2.1", sop_class_uid="1.2.3",
                         sop_instance_uid="1.2.3.4", calling_ae="CTROOM")  # fmt: skip
    assert refused.value.reason == Refusal.UNREADABLE
    assert not list(storage_root.rglob("*.dcm"))


def test_a_part10_file_cut_off_is_refused_as_unreadable(storage_root, tmp_path):
    path = changed_copy(tmp_path, SOPInstanceUID=generate_uid())
    ds = pydicom.dcmread(path)
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(ObjectRefused) as refused:
        instance_receive(source=path, transfer_syntax=ds.file_meta.TransferSyntaxUID, sop_class_uid=ds.SOPClassUID,
                         sop_instance_uid=ds.SOPInstanceUID, calling_ae="CTROOM")  # fmt: skip
    assert refused.value.reason == Refusal.UNREADABLE
    assert not [p for p in storage_root.rglob("*") if p.is_file()]


# A sender's own Part 10 file (a STOW-RS body part): receive.file_receive.
def test_a_part10_file_is_kept_as_sent_and_its_sender_is_the_audit_logs_actor(storage_root, tmp_path):
    path = changed_copy(tmp_path, SOPInstanceUID=generate_uid(), StudyInstanceUID=generate_uid())
    sender = {"channel": "api", "name": "Acme Teleradiology", "user_id": None}
    message = file_receive(path=path, calling_ae="STOW-RS", sender=sender)

    assert storage.object_get(message["storage_key"]) == path.read_bytes()  # preamble and File Meta too
    [instance] = instances_index(messages=[message])
    assert instance.received_from == "STOW-RS"
    entry = AuditEntry.objects.get(action="receive")
    assert (entry.channel, entry.actor, entry.user) == ("api", "Acme Teleradiology", None)


# Files sent together and answered together (a web upload): receive.files_receive.
def test_files_received_together_are_kept_as_sent_or_refused_each_alone(storage_root, tmp_path):
    kept = [changed_copy(tmp_path, SOPInstanceUID=generate_uid()) for _ in range(3)]
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(kept[0].read_bytes()[:200])
    results = files_receive([kept[0], broken, kept[1], kept[2]], calling_ae="WEBUPLOAD")
    assert isinstance(results[1], ObjectRefused) and results[1].reason == Refusal.UNREADABLE
    messages = [results[0], results[2], results[3]]
    assert [storage.object_get(m["storage_key"]) for m in messages] == [p.read_bytes() for p in kept]
    assert sorted(p for p in storage_root.rglob("*") if p.is_file()) == sorted(
        storage_root / m["storage_key"] for m in messages
    )  # and no part file left


def test_objects_committed_together_are_each_durable_or_left_out_alone(storage_root):
    taken = storage.object_put(storage.instance_key(generate_uid()), b"first")
    writers = [storage.object_writer(key) for key in (storage.instance_key(generate_uid()), taken)]
    for writer in writers:
        writer.write(b"second")
    committed, clash = storage.objects_commit(writers)
    assert storage.object_get(committed) == b"second"
    assert isinstance(clash, FileExistsError)  # a key is never reused: the object stored stays
    assert storage.object_get(taken) == b"first"
    assert not list(storage_root.rglob("*.part"))


@pytest.mark.parametrize(
    "raw, reason, detail",
    [
        (lambda whole, meta: whole[128:], Refusal.UNREADABLE, "Not a DICOM file"),  # no preamble
        (lambda whole, meta: whole[: len(meta) - 20], Refusal.UNREADABLE, "cut off"),
        (lambda whole, meta: whole, Refusal.DOES_NOT_MATCH, "Study Instance UID differs"),
    ],
)
def test_a_file_that_is_not_part10_or_not_of_the_study_named_is_refused_and_not_kept(
    storage_root, tmp_path, raw, reason, detail
):
    path = changed_copy(tmp_path, SOPInstanceUID=generate_uid())
    meta, _data, _ds = split(path)
    path.write_bytes(raw(path.read_bytes(), meta))
    with pytest.raises(ObjectRefused) as refused:
        file_receive(path=path, calling_ae="STOW-RS", study_instance_uid=generate_uid())
    assert refused.value.reason == reason
    assert detail in refused.value.detail
    assert not [p for p in storage_root.rglob("*") if p.is_file()]
