"""STORAGE_BACKEND=s3 against a real S3 API over HTTP (moto's server on a local port): a real
DICOM listener stores what storescu and pynetdicom send into the bucket, a real Celery worker
indexes it and draws the thumbnail, and the study page and the bytes read back from S3 are
what was sent. A bucket that cannot take the write gets 0xA700 with an Error Comment, and
nothing is kept anywhere, whole or in part."""

import io
import types
import urllib.request

import boto3
import pydicom
import pytest
from django.core.management import call_command
from django.urls import reverse
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, MRImageStorage

from imaging.ingest import storage
from imaging.models import Instance, Modality, Series
from tests.conftest import free_port, wait_for
from tests.test_dicom_store import TEST_FILES, dataset_bytes, fresh_copy, indexed, send

BUCKET = "clinic-images"
PREFIX = "vetpacs"


@pytest.fixture
def s3(process_env, settings):
    """moto's S3 server on a free port with the clinic's bucket; the test's processes (listener,
    worker) and the test itself use it through the STORAGE_S3_* variables' settings."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto keeps its buckets per process, not per server: start from none.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    client.create_bucket(Bucket=BUCKET)
    env = {"STORAGE_BACKEND": "s3", "STORAGE_S3_BUCKET": BUCKET, "STORAGE_S3_ENDPOINT_URL": endpoint,
           "STORAGE_S3_REGION": "us-east-1", "STORAGE_S3_ACCESS_KEY": "testing", "STORAGE_S3_SECRET_KEY": "testing",
           "STORAGE_S3_PREFIX": PREFIX}  # fmt: skip
    process_env.update(env)
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": BUCKET, "endpoint_url": endpoint, "region_name": "us-east-1", "access_key": "testing",
        "secret_key": "testing", "location": PREFIX, "file_overwrite": False, "default_acl": None}}}  # fmt: skip
    yield types.SimpleNamespace(client=client, endpoint=endpoint, env=env)
    server.stop()


def objects(s3, bucket=BUCKET):
    listing = s3.client.list_objects_v2(Bucket=bucket)
    return {
        o["Key"]: s3.client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in listing.get("Contents", [])
    }


@pytest.fixture
def modality(reference_data):
    return Modality.objects.create(ae_title="STORESCU", host="127.0.0.1", modality_type="CT")


def test_images_go_to_the_bucket_are_indexed_and_read_back_as_sent(
    s3, modality, dicom_listener_start, celery_worker_start, staff, client, tmp_path
):
    listener, _ = dicom_listener_start(), celery_worker_start()
    files = [fresh_copy(name, tmp_path) for name in ("CT_small.dcm", "MR_small.dcm")]
    send("/usr/bin/storescu", listener.port, files[:1])  # dcmtk
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="VETPACS")
    assert assoc.send_c_store(pydicom.dcmread(files[1])).Status == 0x0000  # pynetdicom
    assoc.release()

    indexed(2)
    kept = objects(s3)
    for path in files:
        sent = pydicom.dcmread(path)
        instance = Instance.objects.select_related("series__study").get(sop_instance_uid=sent.SOPInstanceUID)
        body = kept[f"{PREFIX}/{instance.storage_key}"]  # in the bucket, under the prefix
        assert body == storage.object_get(instance.storage_key)  # as the application reads it
        stored = pydicom.dcmread(io.BytesIO(body))
        padding = 0xFFFCFFFC  # Data Set Trailing Padding, which dcmtk drops
        assert [(e.tag, e.value) for e in stored if e.tag != padding] == [
            (e.tag, e.value) for e in sent if e.tag != padding
        ]
        assert instance.file_size == len(body)
    mr = Instance.objects.get(sop_class_uid=MRImageStorage)
    assert dataset_bytes(kept[f"{PREFIX}/{mr.storage_key}"]) == dataset_bytes(files[1].read_bytes())

    # The worker drew each series' thumbnail into the bucket; the study page shows it from there.
    wait_for(lambda: not Series.objects.filter(thumbnail_key="").exists(), message="thumbnails")
    series = Series.objects.get(instances=mr)
    assert f"{PREFIX}/{series.thumbnail_key}" in objects(s3)
    client.force_login(staff["veterinarian"])
    page = client.get(reverse("study_detail", args=[series.study_id]))
    assert page.status_code == 200 and reverse("series_thumbnail", args=[series.pk]) in page.text
    thumbnail = client.get(reverse("series_thumbnail", args=[series.pk]))
    assert thumbnail.status_code == 200 and thumbnail.content.startswith(b"\x89PNG")


def test_a_bucket_that_refuses_the_write_gets_out_of_resources_and_nothing_is_kept(
    s3, modality, dicom_listener_start
):
    listener = dicom_listener_start(STORAGE_S3_BUCKET="no-such-bucket")  # PutObject: NoSuchBucket
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.maximum_pdu_size = 16384  # the data set comes in many pieces: written as it arrives
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="VETPACS")
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    ds.SOPInstanceUID = generate_uid()
    status = assoc.send_c_store(ds)
    assoc.release()

    assert status.Status == 0xA700
    assert status.ErrorComment.startswith("Storage failed")
    assert objects(s3) == {} and "no-such-bucket" not in [
        b["Name"] for b in s3.client.list_buckets()["Buckets"]
    ]
    assert Instance.objects.count() == 0


def test_images_stored_in_the_bucket_while_the_broker_is_down_are_indexed_by_reindex(
    s3, modality, dicom_listener_start
):
    """S3 has no folders: the sweep must find the keys under a prefix all the same."""
    listener = dicom_listener_start(CELERY_BROKER_URL="redis://127.0.0.1:1/0")  # nothing listens there
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="VETPACS")
    uids = []
    for _ in range(2):
        ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
        ds.SOPInstanceUID = generate_uid()
        uids.append(ds.SOPInstanceUID)
        assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()
    assert len(objects(s3)) == 2 and Instance.objects.count() == 0

    call_command("reindex")
    assert sorted(Instance.objects.values_list("sop_instance_uid", flat=True)) == sorted(uids)
    call_command(
        "reindex", days=2
    )  # the periodic sweep's way, by day received (today and yesterday); idempotent
    assert Instance.objects.count() == 2
