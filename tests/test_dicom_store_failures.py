"""C-STOREs that cannot be kept, on a real listener: each gets its failure status with an Error
Comment (PS3.4 B.2.3) and the association goes on; what was acknowledged before is indexed."""

import os
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from imaging.models import Instance, Modality
from tests.conftest import tool_required, wait_for

CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"  # bundled


@pytest.fixture
def storescu_modality(reference_data):
    return Modality.objects.create(ae_title="STORESCU", host="127.0.0.1", modality_type="CT")


@pytest.fixture
def small_disk(storage_root):
    """The test's storage folder on a 1 MiB tmpfs of its own: a real disk that fills up
    (ENOSPC), for the listener process and the worker alike. Mounting needs root; CI runs as
    root, so there it must not skip."""
    if os.geteuid() != 0:
        message = "mounting a tmpfs needs root"
        if os.environ.get("CI") or os.environ.get("VETPACS_REQUIRE_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    storage_root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(storage_root)], check=True)
    try:
        yield storage_root
    finally:
        subprocess.run(["umount", "-l", str(storage_root)], check=True)


def ct(pixels):
    """CT_small under new UIDs, with ``pixels`` bytes of pixel data."""
    ds = pydicom.dcmread(CT_SMALL)
    ds.SOPInstanceUID = generate_uid()
    ds.PixelData = bytes(pixels)
    ds["PixelData"].VR = "OW"
    return ds


def test_a_full_disk_refuses_each_store_with_out_of_resources_and_the_acknowledged_ones_are_indexed(
    storescu_modality, small_disk, dicom_listener, celery_worker
):
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="VETPACS")
    assert assoc.is_established
    acked, refused = [], []
    # Alternately an image in one PDU (stored whole) and one of many PDUs (written as it comes).
    sizes = [30_000, 300_000] * 12
    for size in sizes:
        ds = ct(size)
        status = assoc.send_c_store(ds)
        assert status, "no response: the association was aborted"
        if status.Status == 0x0000:
            acked.append(ds.SOPInstanceUID)
        else:
            refused.append((size, status.Status, status.get("ErrorComment")))
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
    assert assoc.is_released

    assert len(refused) >= 6
    assert {code for _size, code, _comment in refused} == {0xA700}
    assert all(comment and comment.startswith("Storage failed") for _size, _code, comment in refused), refused
    wait_for(lambda: Instance.objects.count() >= len(acked), message="every acknowledged instance indexed")
    assert sorted(Instance.objects.values_list("sop_instance_uid", flat=True)) == sorted(acked)
    assert not list(small_disk.rglob("*.part"))


def test_storescu_sending_into_a_full_disk_hears_out_of_resources_for_each_file_not_kept(
    storescu_modality, small_disk, dicom_listener, celery_worker, tmp_path
):
    files = []
    for n in range(10):
        path = tmp_path / f"ct{n}.dcm"
        ct(200_000).save_as(path)
        files.append(path)
    result = subprocess.run(
        [tool_required("/usr/bin/storescu"), "-v", "--no-halt", "-aet", "STORESCU", "-aec", "VETPACS",
         "127.0.0.1", str(dicom_listener.port), *map(str, files)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    log = result.stdout + result.stderr
    responses = [line for line in log.splitlines() if "Received Store Response" in line]
    assert len(responses) == len(files), log  # one for each file: the association went on
    refused = [line for line in responses if "Success" not in line]
    assert len(refused) >= 4 and all("Refused: OutOfResources" in line for line in refused), log
    assert "Releasing Association" in log and "Abort" not in log
    acked = len(responses) - len(refused)
    wait_for(lambda: Instance.objects.count() >= acked, message="every acknowledged instance indexed")
    assert Instance.objects.count() == acked
    assert len(list(small_disk.rglob("*.dcm"))) == acked
