"""The DICOM listener's network side against peers that break the rules: PDU lengths it never
agreed to, its database gone while it checks who calls, plain TCP on a TLS port."""
import socket
import struct

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from imaging.models import Modality
from tests.conftest import wait_for

TWO_GIB = 2**31


def rss_bytes(pid):
    """The resident memory of process ``pid`` (VmRSS in /proc/<pid>/status)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def pdus_until_closed(sock):
    """Every PDU the listener sends until it closes the connection, as (type, body)."""
    sock.settimeout(30)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    pdus, at = [], 0
    while at + 6 <= len(data):
        pdu_type, _, length = struct.unpack_from(">BBL", data, at)
        pdus.append((pdu_type, data[at + 6 : at + 6 + length]))
        at += 6 + length
    return pdus


def echo(port, calling="ECHOSCU"):
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="VETPACS")
    assert assoc.is_established
    status = assoc.send_c_echo().Status
    assoc.release()
    return status


@pytest.fixture
def echoscu(reference_data):
    return Modality.objects.create(ae_title="ECHOSCU", host="127.0.0.1", modality_type="OT")


def test_a_pdu_declaring_two_gib_is_aborted_unread_and_the_listener_stays_small_and_serving(
    echoscu, dicom_listener
):
    pid = dicom_listener.process.pid
    assert echo(dicom_listener.port) == 0x0000  # everything a normal association loads is loaded
    before = rss_bytes(pid)

    # An A-ASSOCIATE-RQ that says 2 GiB follow (PS3.8 9.3.2), before any maximum is negotiated.
    with socket.create_connection(("127.0.0.1", dicom_listener.port)) as sock:
        sock.sendall(struct.pack(">BBL", 0x01, 0, TWO_GIB) + b"\x00\x01\x00\x00" + b"VETPACS".ljust(16))
        assert [pdu_type for pdu_type, _ in pdus_until_closed(sock)] == [0x07]  # A-ABORT, then closed

    # A P-DATA-TF over our maximum PDU length (PS3.8 9.3.5, D.1) on an established association.
    ae = AE(ae_title="ECHOSCU")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="VETPACS")
    assert assoc.is_established
    assoc.dul.socket.socket.sendall(struct.pack(">BBL", 0x04, 0, TWO_GIB) + b"\x00" * 4096)
    wait_for(lambda: assoc.is_aborted, timeout=30, message="the listener's A-ABORT")

    assert rss_bytes(pid) - before < 32 * 2**20
    assert echo(dicom_listener.port) == 0x0000
    log = dicom_listener.log.read_text()
    assert "declares 2147483648 bytes, more than the 1048576 allowed" in log
    assert "declares 2147483648 bytes, more than the 131072 allowed" in log


def test_a_read_longer_than_the_buffer_ahead_grows_as_the_bytes_arrive_and_returns_them_all():
    """ae.FastSocket.recv: a PDU over RECV_AHEAD (a DICOM_MAX_PDU above 1 MiB) is read whole."""
    import threading

    from imaging.dicom.ae import RECV_AHEAD, FastSocket

    with socket.create_server(("127.0.0.1", 0)) as server:
        theirs = socket.create_connection(server.getsockname())
        ours, _ = server.accept()
    payload = bytes(range(256)) * (3 * RECV_AHEAD // 256 + 7)
    sender = threading.Thread(target=lambda: (theirs.sendall(payload), theirs.close()))
    sender.start()
    fast = FastSocket.__new__(FastSocket)  # only its socket is used by recv
    fast.socket = ours
    try:
        assert fast.recv(len(payload)) == payload
        assert fast.recv(10) == b""  # closed: what there is
    finally:
        ours.close()
        sender.join(timeout=10)
