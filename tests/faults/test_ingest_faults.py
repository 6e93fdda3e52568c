"""The fault suite: a burst of C-STOREs to a real listener, and mid-burst one part of the ingest
dies at once (SIGKILL): the Celery worker, the DICOM listener, or the broker (a redis-server of
the test's own). It comes back as `make run`'s supervisor would bring it back, the sender goes
on as a modality does (it sends again what was not acknowledged), and every object that was
acknowledged must be in the index afterwards.

What the queue lost (the task the killed worker held, the batch the killed listener had not
queued yet, whatever Redis held) is indexed by the periodic sweep, here every 2 s for objects
2 s old (STORAGE_SWEEP_SECONDS and STORAGE_SWEEP_MIN_AGE; 300 s and 60 s by default). Each test
prints how long after the fault everything acknowledged was indexed; the only bound on it is
a hang guard of 60 s.
"""

import signal
import subprocess
import sys
import time
import types

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from imaging.models import Instance
from tests import brokers
from tests.conftest import ROOT, wait_for
from tests.studies import CT_SMALL

private_broker = brokers.private_broker  # a fixture

BURST, FAULT_AT, BACK_AFTER = 240, 80, 40  # objects sent; the fault comes at the 80th, recovery 40 later
SUCCESS = 0x0000


@pytest.fixture
def ingest(
    process_env, processes_stopping, private_broker, celery_worker_start, dicom_listener_start, tmp_path
):
    """A listener, a worker and beat (a process of its own here, so that killing the worker
    leaves no orphan), all on the test's own broker."""
    process_env.update(STORAGE_SWEEP_SECONDS="2", STORAGE_SWEEP_MIN_AGE="2", DICOM_ALLOW_ANY_AE="true")
    beat_log = tmp_path / "beat.log"
    with open(beat_log, "w") as out:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "vetclinic", "beat", "--loglevel", "INFO",
             "--schedule", str(tmp_path / "beat-schedule")],
            cwd=ROOT, env=process_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    rig = types.SimpleNamespace(
        broker=private_broker, worker=celery_worker_start(), listener=dicom_listener_start(),
        start_worker=celery_worker_start, start_listener=dicom_listener_start,
    )  # fmt: skip
    yield rig
    processes_stopping.stop(beat, beat_log, timeout=20, tail=2000)


class Modality:
    """A modality sending one study, an object at a time, as a pynetdicom SCU; an object that
    is not acknowledged (the association dropped) is sent again on a new association."""

    def __init__(self, rig):
        self.rig, self.assoc, self.acked = rig, None, []
        self.template = pydicom.dcmread(CT_SMALL)
        self.template.StudyInstanceUID, self.template.SeriesInstanceUID = generate_uid(), generate_uid()

    def _associate(self):
        ae = AE(ae_title="CTROOM")
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        self.assoc = ae.associate("127.0.0.1", self.rig.listener.port, ae_title="VETPACS")

    def send(self):
        ds = self.template.copy()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        for _ in range(20):
            if self.assoc is None or not self.assoc.is_established:
                self._associate()
                if not self.assoc.is_established:
                    time.sleep(0.25)  # the listener is starting again
                    continue
            status = self.assoc.send_c_store(ds)
            if status and status.Status == SUCCESS:
                self.acked.append(ds.SOPInstanceUID)
                return
        raise AssertionError(f"{ds.SOPInstanceUID} was never acknowledged")

    def release(self):
        if self.assoc is not None and self.assoc.is_established:
            self.assoc.release()


def burst(rig, fault, recover):
    """Send the burst with ``fault()`` at object FAULT_AT and ``recover()`` BACK_AFTER later;
    returns (the modality, seconds from the fault to the last acknowledged object indexed)."""
    modality = Modality(rig)
    for n in range(BURST):
        if n == FAULT_AT:
            fault()
            faulted = time.monotonic()
        if n == FAULT_AT + BACK_AFTER:
            recover()
        modality.send()
    modality.release()
    sent = time.monotonic()
    indexed = Instance.objects.filter(sop_instance_uid__in=modality.acked)
    wait_for(lambda: indexed.count() == len(modality.acked), timeout=60, interval=0.2,
             message="every acknowledged object indexed")  # fmt: skip
    done = time.monotonic()
    print(
        f"{len(modality.acked)} acknowledged; all indexed {done - faulted:.1f} s after the fault, "
        f"{done - sent:.1f} s after the last C-STORE"
    )
    return modality, done - faulted


def test_nothing_acknowledged_is_lost_when_the_worker_is_killed_mid_burst(ingest):
    def kill():
        ingest.worker.send_signal(signal.SIGKILL)
        ingest.worker.wait()

    modality, _ = burst(ingest, fault=kill, recover=ingest.start_worker)
    assert len(modality.acked) == BURST
    assert Instance.objects.filter(sop_instance_uid__in=modality.acked).count() == BURST


def test_nothing_acknowledged_is_lost_when_the_listener_is_killed_mid_burst(ingest):
    def kill():
        ingest.listener.process.send_signal(signal.SIGKILL)
        ingest.listener.process.wait()

    def restart():
        ingest.listener = ingest.start_listener()

    # The listener comes back at once (the modality cannot send to a listener that is not there).
    modality, _ = burst(ingest, fault=lambda: (kill(), restart()), recover=lambda: None)
    assert len(modality.acked) == BURST
    assert Instance.objects.filter(sop_instance_uid__in=modality.acked).count() == BURST


def test_nothing_acknowledged_is_lost_when_the_broker_is_killed_mid_burst(ingest):
    modality, _ = burst(ingest, fault=ingest.broker.server.kill, recover=ingest.broker.server.start)
    assert len(modality.acked) == BURST
    assert Instance.objects.filter(sop_instance_uid__in=modality.acked).count() == BURST
    assert ingest.worker.poll() is None  # the worker rode the outage out
