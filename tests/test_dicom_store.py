"""The DICOM listener on a real socket, fed by dcmtk and pynetdicom, indexed by a real worker."""

import io
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from django.core.management import call_command
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE
from pynetdicom import _config as pynetdicom_config
from pynetdicom.sop_class import CTImageStorage, MRImageStorage, SecondaryCaptureImageStorage, Verification

from imaging.archive.metadata import stored_document
from imaging.models import Instance, InstanceMetadata, InstanceVersion, Modality, Study
from tests.conftest import tool_required, wait_for

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"  # bundled: no download


@pytest.fixture(autouse=True)
def send_files_as_they_are(monkeypatch):
    """pynetdicom sends a file path as its bytes, undecoded: a sender we can feed bad data."""
    monkeypatch.setattr(pynetdicom_config, "STORE_SEND_CHUNKED_DATASET", True)


@pytest.fixture
def storescu_modality(reference_data):
    return Modality.objects.create(ae_title="STORESCU", host="127.0.0.1", modality_type="CT")


def fresh_copy(name, folder):
    """A bundled test file under new UIDs (several bundled files share their UIDs)."""
    ds = pydicom.dcmread(TEST_FILES / name)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    path = Path(folder) / name
    ds.save_as(path)  # compressed pixel data is written back as it was
    return path


def dataset_bytes(part10):
    """The data set of a Part 10 file, without preamble and file meta."""
    fp = io.BytesIO(part10)
    pydicom.filereader.read_preamble(fp, False)
    pydicom.filereader._read_file_meta_info(fp)
    return part10[fp.tell() :]


def stored(storage_root, instance):
    return (storage_root / instance.storage_key).read_bytes()


def indexed(count):
    return wait_for(lambda: Instance.objects.count() >= count, message=f"{count} instances indexed")


def send(tool, port, files):
    """Run a dcmtk sender (absolute path: .venv/bin has pynetdicom's namesakes)."""
    result = subprocess.run(
        [tool_required(tool), "-aet", "STORESCU", "-aec", "VETPACS", "127.0.0.1", str(port), *map(str, files)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def reference_copies(storescp):
    """What dcmtk's bit-preserving storescp received, by SOP Instance UID."""
    return {
        str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID): dataset_bytes(path.read_bytes())
        for path in storescp.folder.iterdir()
    }


def test_storescu_stores_and_a_worker_indexes(
    storescu_modality, dicom_listener, celery_worker, storage_root, tmp_path
):
    files = [fresh_copy(name, tmp_path) for name in ("CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm")]
    send("/usr/bin/storescu", dicom_listener.port, files)

    indexed(3)
    for path in files:
        sent = pydicom.dcmread(path)
        instance = Instance.objects.select_related("series__study").get(sop_instance_uid=sent.SOPInstanceUID)
        kept = pydicom.dcmread(io.BytesIO(stored(storage_root, instance)))
        # storescu may re-encode to the transfer syntax negotiated; the content is the same.
        assert kept.file_meta.TransferSyntaxUID == instance.transfer_syntax_uid
        padding = 0xFFFCFFFC  # Data Set Trailing Padding, which dcmtk drops
        assert [(e.tag, e.value) for e in kept] == [(e.tag, e.value) for e in sent if e.tag != padding]
        assert kept.file_meta.SourceApplicationEntityTitle == "STORESCU"
        assert (instance.rows, instance.columns) == (sent.Rows, sent.Columns)
        assert instance.received_from == "STORESCU"
        assert instance.series.study.study_instance_uid == sent.StudyInstanceUID
        assert instance.series.study.link == Study.Link.UNMATCHED  # no such patient here
    assert "association from STORESCU" in dicom_listener.log.read_text()
    # The worker keeps each object's WADO-RS metadata in a task after indexing.
    wait_for(lambda: InstanceMetadata.objects.count() >= 3, message="3 metadata documents kept")
    for kept in InstanceMetadata.objects.select_related("instance"):
        assert kept.storage_key == kept.instance.storage_key
        assert kept.document == stored_document(kept.storage_key)


COMPRESSED = [
    ("SC_rgb_jpeg_dcmtk.dcm", "1.2.840.10008.1.2.4.50"),  # JPEG baseline
    ("JPGExtended.dcm", "1.2.840.10008.1.2.4.51"),  # JPEG extended
    ("SC_rgb_jpeg_gdcm.dcm", "1.2.840.10008.1.2.4.70"),  # JPEG lossless
    ("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80"),  # JPEG-LS
    ("MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90"),  # JPEG 2000 lossless
    ("693_J2KI.dcm", "1.2.840.10008.1.2.4.91"),  # JPEG 2000
    ("MR_small_RLE.dcm", "1.2.840.10008.1.2.5"),  # RLE
    ("examples_ybr_color.dcm", "1.2.840.10008.1.2.4.50"),  # multi-frame ultrasound, 30 frames
]


def test_dcmsend_stores_each_transfer_syntax_as_sent(
    storescu_modality, dicom_listener, celery_worker, storage_root, storescp_reference, tmp_path
):
    files = [fresh_copy(name, tmp_path) for name, _ in COMPRESSED]
    send("/usr/bin/dcmsend", dicom_listener.port, files)
    send("/usr/bin/dcmsend", storescp_reference.port, files)

    indexed(len(files))
    received = reference_copies(storescp_reference)
    for path, (name, syntax) in zip(files, COMPRESSED, strict=True):
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        instance = Instance.objects.get(sop_instance_uid=uid)
        assert instance.transfer_syntax_uid == syntax, name
        assert dataset_bytes(stored(storage_root, instance)) == received[uid], name
    us = Instance.objects.get(sop_class_uid="1.2.840.10008.5.1.4.1.1.3.1")
    assert us.number_of_frames == 30
    # A task renders a thumbnail for every series.
    wait_for(lambda: not Study.objects.filter(series__thumbnail_key="").exists(), message="thumbnails")


def test_pynetdicom_echoes_and_stores_the_bytes_it_sent(
    storescu_modality, dicom_listener, celery_worker, storage_root, tmp_path
):
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.add_requested_context(MRImageStorage, ImplicitVRLittleEndian)
    ae.add_requested_context(SecondaryCaptureImageStorage, DeflatedExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="VETPACS")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    files = [
        fresh_copy(name, tmp_path) for name in ("CT_small.dcm", "MR_small_implicit.dcm", "image_dfl.dcm")
    ]
    for path in files:
        assert assoc.send_c_store(path).Status == 0x0000  # a path is sent as its bytes are
    assoc.release()

    indexed(3)
    for path in files:
        instance = Instance.objects.get(sop_instance_uid=pydicom.dcmread(path).SOPInstanceUID)
        assert dataset_bytes(stored(storage_root, instance)) == dataset_bytes(path.read_bytes())


def associate(port, ae_title, *contexts):
    ae = AE(ae_title=ae_title)
    for context in contexts or (CTImageStorage,):
        ae.add_requested_context(context, ExplicitVRLittleEndian)
    return ae.associate("127.0.0.1", port, ae_title="VETPACS")


def test_an_unregistered_caller_is_refused_and_logged(storescu_modality, dicom_listener):
    assoc = associate(dicom_listener.port, "STRANGER")
    assert assoc.is_rejected
    result = subprocess.run(
        [
            tool_required("/usr/bin/storescu"),
            "-aet",
            "STRANGER",
            "-aec",
            "VETPACS",
            "127.0.0.1",
            str(dicom_listener.port),
            str(TEST_FILES / "CT_small.dcm"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Association Rejected" in result.stderr
    wait_for(lambda: "refused association from STRANGER at 127.0.0.1" in dicom_listener.log.read_text(), timeout=10,
             message="the refusal in the log")  # fmt: skip


def test_a_registered_title_from_another_address_is_refused(reference_data, dicom_listener):
    Modality.objects.create(ae_title="CTROOM", host="192.0.2.10", modality_type="CT")
    assert associate(dicom_listener.port, "CTROOM").is_rejected
    Modality.objects.filter(ae_title="CTROOM").update(host="127.0.0.1")
    assoc = associate(dicom_listener.port, "CTROOM")
    assert assoc.is_established
    assoc.release()


def test_any_caller_may_store_when_the_clinic_allows_it(reference_data, dicom_listener_start):
    listener = dicom_listener_start(DICOM_ALLOW_ANY_AE="true")
    assoc = associate(listener.port, "ANYONE")
    assert assoc.is_established
    assoc.release()


def part10_with(dataset_part, like="CT_small.dcm"):
    """A file whose File Meta is valid but whose data set is ``dataset_part``."""
    original = (TEST_FILES / like).read_bytes()
    return original[: len(original) - len(dataset_bytes(original))] + dataset_part


@pytest.mark.parametrize(
    "name, data, comment",
    [
        ("garbage", lambda full: b"\x08\x00\x16\x00garbage!" * 300, "Malformed data set"),
        ("cut in half", lambda full: full[: len(full) // 2], "Malformed data set"),
        ("cut in the header", lambda full: full[:333], "Malformed data set"),
    ],
)
def test_bad_data_gets_a_failure_status_and_nothing_is_kept(
    storescu_modality, dicom_listener, celery_worker, storage_root, tmp_path, name, data, comment
):
    full = dataset_bytes((TEST_FILES / "CT_small.dcm").read_bytes())
    path = tmp_path / "bad.dcm"
    path.write_bytes(part10_with(data(full)))
    assoc = associate(dicom_listener.port, "STORESCU")
    # A path is sent as it is on disk, undecoded: exactly the bytes we want to try.
    status = assoc.send_c_store(path)
    assoc.release()

    assert status.Status == 0xC000
    assert status.ErrorComment.startswith(comment)
    assert not list(storage_root.rglob("*.dcm"))
    assert Instance.objects.count() == 0


def test_a_data_set_that_is_not_the_one_announced_is_refused(
    storescu_modality, dicom_listener, storage_root, tmp_path
):
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    ds.SOPClassUID = MRImageStorage  # the data set says MR; the file meta, and so the request, CT
    path = tmp_path / "mismatch.dcm"
    ds.save_as(path)
    assoc = associate(dicom_listener.port, "STORESCU", CTImageStorage, MRImageStorage)
    status = assoc.send_c_store(path)
    assoc.release()
    assert status.Status == 0xA900  # PS3.4 B.2.3: data set does not match SOP class
    assert "SOP" in status.ErrorComment
    assert not list(storage_root.rglob("*.dcm"))


def test_storage_that_fails_gets_out_of_resources(storescu_modality, dicom_listener, storage_root):
    # A file where the storage folder should be: every write fails (even for root).
    shutil.rmtree(storage_root, ignore_errors=True)
    storage_root.write_text("not a folder")
    assoc = associate(dicom_listener.port, "STORESCU")
    status = assoc.send_c_store(pydicom.dcmread(TEST_FILES / "CT_small.dcm"))
    assoc.release()
    assert status.Status == 0xA700
    assert status.ErrorComment.startswith("Storage failed")


def test_the_same_instance_twice_is_one_row_and_a_different_one_is_a_new_version(
    storescu_modality, dicom_listener, celery_worker, storage_root
):
    mr = TEST_FILES / "MR_small.dcm"  # MR_small_RLE.dcm: the same SOP Instance UID, other bytes
    assoc = associate(dicom_listener.port, "STORESCU", MRImageStorage)
    assert assoc.send_c_store(mr).Status == 0
    assert assoc.send_c_store(mr).Status == 0
    assoc.release()
    wait_for(lambda: Instance.objects.count() == 1 and len(list(storage_root.rglob("*.dcm"))) == 1,
             message="the duplicate to be dropped")  # fmt: skip

    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(MRImageStorage, "1.2.840.10008.1.2.5")
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="VETPACS")
    assert assoc.send_c_store(TEST_FILES / "MR_small_RLE.dcm").Status == 0
    assoc.release()

    instance = wait_for(lambda: Instance.objects.filter(version=2).first(), message="the new version")
    assert instance.transfer_syntax_uid == "1.2.840.10008.1.2.5"
    old = InstanceVersion.objects.get(instance=instance)
    assert (old.version, old.reason) == (1, InstanceVersion.Reason.REPLACED)
    assert (storage_root / old.storage_key).exists()  # nothing received is thrown away
    assert "replaced by a different object" in instance.series.study.flag


def test_images_stored_while_the_broker_is_down_are_indexed_by_the_sweep(
    storescu_modality, dicom_listener_start, storage_root
):
    # Nothing listens on port 1: queueing fails, storing must not.
    listener = dicom_listener_start(CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    assoc = associate(listener.port, "STORESCU")
    for _ in range(3):
        ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
        ds.SOPInstanceUID = generate_uid()
        assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    assert len(list(storage_root.rglob("*.dcm"))) == 3
    assert Instance.objects.count() == 0

    call_command("reindex")
    assert Instance.objects.count() == 3
    call_command("reindex")  # idempotent
    assert Instance.objects.count() == 3


def test_a_worker_killed_mid_ingest_loses_nothing_and_doubles_nothing(
    storescu_modality, dicom_listener, celery_worker_start, storage_root, tmp_path
):
    count = 60
    worker = celery_worker_start()
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="VETPACS")
    template = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    for _ in range(count):
        template.SOPInstanceUID = generate_uid()
        assert assoc.send_c_store(template).Status == 0
    assoc.release()

    wait_for(lambda: Instance.objects.count() > 0, message="the worker to start indexing")
    worker.kill()  # SIGKILL: no chance to finish or acknowledge anything
    worker.wait()
    celery_worker_start()  # a new worker takes the redelivered messages
    call_command("reindex")  # and the sweep whatever a broker without redelivery lost

    wait_for(lambda: Instance.objects.count() == count, message="every instance indexed")
    assert len(list(storage_root.rglob("*.dcm"))) == count
    assert Instance.objects.values("sop_instance_uid").distinct().count() == count
    assert Study.objects.count() == 1
