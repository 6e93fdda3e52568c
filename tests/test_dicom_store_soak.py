"""Many associations at once, and one long one, on a real listener (one process, and the
dispatcher handing connections to two): every C-STORE is answered in time and every instance
is indexed.

The senders are dcmtk's storescu processes. pynetdicom's own requestor cannot be the sender
here: run from many threads, its association reactor sometimes takes the C-STORE-RSP meant for
send_c_store (it logs "Received unexpected C-STORE service message") and send_c_store waits
until its DIMSE timeout, although the listener sent the answer (pynetdicom issues #850, #875).
"""

import io
import subprocess
import uuid
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from imaging.models import Instance, Modality
from tests.conftest import tool_required, wait_for

CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"  # bundled
# 21 associations open at once (the senders start together) is what this tests; how many objects
# each carries only makes them overlap for longer. The long one carries ten times what a short
# one does, a tenth of it large (several PDUs each): 900 stores a run, where 3,200 took two
# minutes of the suite's time for the same property.
ASSOCIATIONS, PER_ASSOCIATION, LONG_ONE = 20, 30, 300
ANSWER_WITHIN = 30  # seconds: storescu gives up on a C-STORE not answered by then (and says so)


@pytest.fixture
def storescu_modality(reference_data):
    return Modality.objects.create(ae_title="STORESCU", host="127.0.0.1", modality_type="CT")


def a_uid():
    return f"2.25.{uuid.uuid4().int % 10**38 + 10**38}"  # always 44 characters


def ct_bytes(side, template_uid, study, series):
    """A CT of ``side`` x ``side`` pixels whose SOP Instance UID is ``template_uid``, as a file."""
    ds = pydicom.dcmread(CT_SMALL)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.Rows = ds.Columns = side
    ds.PixelData = bytes(side * side * 2)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = template_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=True)
    return buffer.getvalue()


def series_files(folder, count, *, large_every=0):
    """``count`` CTs of one series, each under its own SOP Instance UID: small ones (8 KiB of
    pixels, one PDU), and with ``large_every`` every so many a larger one (450 KiB: several
    PDUs, written as it arrives). Their copies are made by replacing the UID in the bytes."""
    template, study, series = a_uid(), a_uid(), a_uid()
    small, large = [ct_bytes(side, template, study, series) for side in (64, 480)]
    folder.mkdir()
    uids = []
    for number in range(count):
        uids.append(a_uid())
        data = large if large_every and number % large_every == 0 else small
        (folder / f"{number:05d}.dcm").write_bytes(data.replace(template.encode(), uids[-1].encode()))
    return uids


@pytest.mark.parametrize("processes", [1, 2])
def test_many_associations_at_once_get_every_answer_and_every_instance_is_indexed(
    storescu_modality, dicom_listener_start, celery_worker, tmp_path, processes
):
    storescu = tool_required("/usr/bin/storescu")
    listener = dicom_listener_start(processes=processes)
    sent, folders, senders = [], [], []
    for number, count in enumerate([LONG_ONE] + [PER_ASSOCIATION] * ASSOCIATIONS):
        folder = tmp_path / f"association-{number}"
        sent += series_files(folder, count, large_every=10 if count == LONG_ONE else 0)
        folders.append((count, folder))
    for count, folder in folders:  # every file written first, so that the senders start together
        senders.append((count, subprocess.Popen(
            [storescu, "-v", "-td", str(ANSWER_WITHIN), "-aet", "STORESCU", "-aec", "VETPACS",
             "127.0.0.1", str(listener.port), *sorted(map(str, folder.iterdir()))],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )))  # fmt: skip

    for count, sender in senders:
        log = sender.communicate(timeout=240)[0]
        assert sender.returncode == 0, log[-3000:]
        assert log.count("Received Store Response (Success)") == count, log[-3000:]
        assert "Releasing Association" in log and "Abort" not in log, log[-3000:]

    wait_for(lambda: Instance.objects.count() >= len(sent), timeout=120, message="every instance indexed")
    assert sorted(Instance.objects.values_list("sop_instance_uid", flat=True)) == sorted(sent)
