"""manage.py dicom_listener --processes N on a real port: one process accepts and hands each
connection to the least busy of N listener processes, which store and queue as one would."""

import os
import signal
import socket
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from imaging.models import Instance
from tests.conftest import wait_for

CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"  # bundled


@pytest.fixture
def listener(reference_data, dicom_listener_start):
    started = dicom_listener_start(processes=2, DICOM_ALLOW_ANY_AE="true")
    started.children = listener_pids(started, 2)
    return started


def listener_pids(listener, count):
    """The pids of the listener processes that said they are ready, oldest first."""

    def ready():
        lines = listener.log.read_text().splitlines()
        pids = [int(line.rsplit("(pid ", 1)[1].rstrip(")")) for line in lines if " ready (pid " in line]
        return pids if len(pids) >= count else None

    return wait_for(ready, timeout=30, message=f"{count} listener processes")


def connections_held(pid, port):
    """Established TCP connections on local ``port`` whose socket the process ``pid`` holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    held = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            held += local_port == port and state == "01" and inode in inodes  # 01: ESTABLISHED
    return held


def ct_copy():
    ds = pydicom.dcmread(CT_SMALL)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return ds


def associate(port, *contexts):
    ae = AE(ae_title="STORESCU")
    for context in contexts:
        ae.add_requested_context(context)
    assoc = ae.associate("127.0.0.1", port, ae_title="VETPACS")
    assert assoc.is_established
    return assoc


def test_four_associations_go_two_to_each_process_and_all_is_indexed(listener, celery_worker, storage_root):
    assocs = [associate(listener.port, CTImageStorage) for _ in range(4)]
    try:
        held = {pid: connections_held(pid, listener.port) for pid in listener.children}
        assert sorted(held.values()) == [2, 2], held
        sent = []
        for assoc in assocs:
            for _ in range(2):
                ds = ct_copy()
                assert assoc.send_c_store(ds).Status == 0x0000
                sent.append(ds.SOPInstanceUID)
    finally:
        for assoc in assocs:
            assoc.release()

    wait_for(lambda: Instance.objects.count() >= len(sent), message="8 instances indexed")
    assert sorted(Instance.objects.values_list("sop_instance_uid", flat=True)) == sorted(sent)
    assert len(list(storage_root.rglob("*.dcm"))) == len(sent)
    # Released associations count no more: the next four are spread two and two again.
    again = [associate(listener.port, Verification) for _ in range(4)]
    try:
        assert sorted(connections_held(pid, listener.port) for pid in listener.children) == [2, 2]
    finally:
        for assoc in again:
            assoc.release()


def test_sigterm_stops_the_dispatcher_and_every_listener_process(listener):
    assoc = associate(listener.port, Verification)
    assoc.release()

    listener.process.send_signal(signal.SIGTERM)

    assert listener.process.wait(timeout=60) == 0
    for pid in listener.children:
        assert not os.path.exists(f"/proc/{pid}")  # ended and reaped
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", listener.port), timeout=5)
    assert listener.log.read_text().count("DICOM listener stopping") == 3


def test_a_listener_process_that_dies_is_replaced_and_the_port_stays_open(listener):
    dead = listener.children[0]

    os.kill(dead, signal.SIGKILL)

    pids = listener_pids(listener, 3)
    assert dead in pids and len(set(pids)) == 3
    alive = [pid for pid in pids if pid != dead]
    assocs = [associate(listener.port, Verification) for _ in range(4)]
    try:
        assert [connections_held(pid, listener.port) for pid in alive] == [2, 2]
        assert all(assoc.send_c_echo().Status == 0x0000 for assoc in assocs)
    finally:
        for assoc in assocs:
            assoc.release()
    log = listener.log.read_text()
    assert f"(pid {dead}) left; starting another" in log
    wait_for(lambda: f"(pid {dead}) exited (signal 9)" in listener.log.read_text(), message="it is reaped")


def test_a_listener_process_told_to_stop_finishes_its_association_and_others_take_the_new_ones(listener):
    held = associate(listener.port, Verification)
    [stopping] = [pid for pid in listener.children if connections_held(pid, listener.port) == 1]

    os.kill(stopping, signal.SIGTERM)

    wait_for(lambda: f"(pid {stopping}) left;" in listener.log.read_text(), message="it leaves")
    fresh = [associate(listener.port, Verification) for _ in range(2)]  # not kept waiting for it
    assert all(assoc.send_c_echo().Status == 0x0000 for assoc in [held, *fresh])
    assert connections_held(stopping, listener.port) == 1
    for assoc in [held, *fresh]:
        assoc.release()
    wait_for(lambda: f"(pid {stopping}) exited (exit code 0)" in listener.log.read_text(), message="it exits")


def test_a_burst_of_stop_signals_stops_a_listener_and_never_hangs_it(reference_data, dicom_listener_start):
    """SIGTERM's handler runs in the main thread between two bytecodes, also inside an earlier
    handler: one that took a lock (Event.set()) deadlocked about one listener in two when a
    second SIGTERM came during the first (`timeout` sends two). Three listeners, each sent 200."""
    for _ in range(3):
        process = dicom_listener_start().process
        for _ in range(200):
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                break
        assert process.wait(timeout=20) == 0
