"""What only the DICOM listener's fast path (imaging/dicom/net/fast/) does, beyond what plain
pynetdicom does: a PDU longer than allowed refused before it is read, data sets written to
storage as they arrive, C-STORE served on the thread that read it, a C-STORE whose command set
pynetdicom cannot make a request of answered with 0xC000 (pynetdicom aborts the association),
and its PDU reading. ``make test`` leaves this file out of its DICOM_FAST_PATH=false pass."""

import io
import socket
import struct
import threading

import pydicom
from django.core.management import call_command
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from imaging.models import Instance
from tests.archive import archive  # noqa: F401 (a fixture)
from tests.conftest import wait_for
from tests.test_dicom_network import echo, echoscu  # noqa: F401 (a fixture)
from tests.test_dicom_qr_find import nodes  # noqa: F401 (a fixture)
from tests.test_dicom_store import TEST_FILES, associate, dataset_bytes
from tests.test_dicom_store_malformed import (  # noqa: F401 (fixtures)
    LONG_UID,
    NOT_A_UID,
    SOP_INSTANCE,
    case_good,
    case_long_uid_in_command,
    case_long_uid_in_command_and_data,
    command_set,
    ct_elements,
    element,
    encoded,
    send_files_as_they_are,
    store_raw,
    storescu_modality,
    uid,
    value_of,
)

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
    """reactor.FastSocket.recv: a PDU over RECV_AHEAD (a DICOM_MAX_PDU above 1 MiB) is read whole."""
    import threading

    from imaging.dicom.net.fast.reactor import RECV_AHEAD, FastSocket

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


def test_an_image_cut_off_by_an_abort_is_written_as_it_comes_and_then_not_kept(
    storescu_modality, dicom_listener, celery_worker, storage_root
):
    """fast/dimse.py FastDIMSE writes a data set to a part file while it arrives; a transfer that never
    completes is never acknowledged, so nothing of it may stay (nor be indexed by the sweep)."""
    from pynetdicom.dimse_messages import C_STORE_RQ
    from pynetdicom.dimse_primitives import C_STORE

    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    ds.SOPInstanceUID = generate_uid()
    ds.PixelData = bytes(2_000_000)  # many PDUs' worth
    ds["PixelData"].VR = "OW"
    assoc = associate(dicom_listener.port, "STORESCU")
    request = C_STORE()
    request.MessageID, request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = (
        1,
        CTImageStorage,
        ds.SOPInstanceUID,
    )
    request.Priority = 2
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=True)
    request.DataSet = io.BytesIO(dataset_bytes(buffer.getvalue()))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    context_id = assoc.accepted_contexts[0].context_id
    pdus = list(message.encode_msg(context_id, assoc.acceptor.maximum_length))
    assert len(pdus) > 8
    for pdu in pdus[: len(pdus) // 2]:  # the command set and half the data set
        assoc.dul.send_pdu(pdu)
    wait_for(lambda: list(storage_root.rglob("*.part")), message="the data set written as it arrives")

    assoc.abort()
    wait_for(lambda: not list(storage_root.rglob("*.part")), message="the part file removed")
    assert not list(storage_root.rglob("*.dcm"))
    call_command("reindex")
    assert Instance.objects.count() == 0


def test_a_c_store_is_served_on_the_thread_that_read_it(settings, storage_root, monkeypatch):
    """fast/dimse.py FastDIMSE answers a C-STORE where its last fragment was decoded, with no hand-over to
    the association's thread and back (two thread wake-ups an image). In-process, on port 0."""
    from pynetdicom.dul import DULServiceProvider

    from imaging.dicom.net import ae as node
    from imaging.dicom.net.handlers import on_store

    settings.DICOM_ALLOW_ANY_AE = True
    threads = []

    def recording(event):
        threads.append(threading.current_thread())
        return on_store(event)

    monkeypatch.setattr(node, "HANDLERS", [(e, recording if h is on_store else h) for e, h in node.HANDLERS])
    ae = node.ae_build(ae_title="VETPACS", max_pdu=131072)
    server = node.server_start(ae, ("127.0.0.1", 0))
    try:
        assoc = associate(server.server_address[1], "STORESCU")
        for _ in range(2):
            ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
            ds.SOPInstanceUID = generate_uid()
            assert assoc.send_c_store(ds).Status == 0x0000
        assoc.release()
    finally:
        server.shutdown()
        ae.shutdown()
    assert len(threads) == 2 and all(isinstance(thread, DULServiceProvider) for thread in threads)
    assert len(list(storage_root.rglob("*.dcm"))) == 2


def test_a_p_data_tf_body_is_read_into_its_items_or_refused_when_they_do_not_add_up():
    """wire.p_data_decode (PS3.8 9.3.5): each item a 4-byte length, the context ID, then the
    message control header and the fragment (PS3.8 E.2)."""
    import struct

    from pynetdicom.pdu import P_DATA_TF

    from imaging.dicom.net.fast.wire import p_data_decode

    def item(context_id, header, fragment):
        return struct.pack(">LB", 2 + len(fragment), context_id) + bytes([header]) + fragment

    body = item(1, 0x03, b"command") + item(1, 0x00, b"data 1") + item(3, 0x02, b"data two")
    items = p_data_decode(bytearray(body)).to_primitive().presentation_data_value_list
    reference = P_DATA_TF()
    reference.decode(struct.pack(">BBL", 4, 0, len(body)) + body)
    assert [(c, bytes(v)) for c, v in items] == reference.to_primitive().presentation_data_value_list
    assert type(items[0][1]) is bytes  # a command fragment: bytes, as pynetdicom's
    assert type(items[1][1]) is memoryview  # a data set fragment: a view of what was read, not a copy

    for bad in [
        b"",
        body[:-1],
        body + b"\x00\x00",
        struct.pack(">LB", 1, 1) + b"\x03",
        struct.pack(">LB", 99, 1) + b"\x03x",
    ]:
        assert p_data_decode(bytearray(bad)) is None, bad


def test_a_c_store_request_whose_command_set_or_data_set_is_wrong_is_answered_and_the_association_goes_on(
    storescu_modality, dicom_listener, celery_worker, storage_root, tmp_path
):
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.add_requested_context(Verification)
    ae.dimse_timeout = 20  # a request left unanswered fails the test, not hangs it
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="VETPACS")
    elements = ct_elements()
    instance = value_of(elements, SOP_INSTANCE)
    data = encoded(elements)
    ct_class = {0x00000002: uid(CTImageStorage)}

    no_instance_uid = store_raw(assoc, command_set(1, ct_class), data)
    long_class_uid = store_raw(
        assoc, command_set(2, {0x00000002: uid(LONG_UID), 0x00001000: uid(instance)}), data
    )
    meta_in_data = store_raw(
        assoc, command_set(3, {**ct_class, 0x00001000: uid(instance)}),
        element(0x00020010, b"UI", uid(ImplicitVRLittleEndian)) + data,
    )  # fmt: skip
    stored = store_raw(assoc, command_set(4, {**ct_class, 0x00001000: uid(instance)}), data)
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()

    answers = [(r.MessageIDBeingRespondedTo, r.Status, r.ErrorComment, r.AffectedSOPInstanceUID)
               for r in (no_instance_uid, long_class_uid, meta_in_data, stored)]  # fmt: skip
    assert answers == [
        (1, 0xC000, "Invalid request: Affected SOP Instance UID missing or unreadable", None),
        (2, 0xC000, "Invalid request: Affected SOP Class UID is not a valid UID", instance),
        (3, 0xC000, "Malformed data set: element (0002,0010) in a data set", instance),
        (4, 0x0000, None, instance),
    ]
    wait_for(lambda: Instance.objects.count() >= 1, message="the good one indexed")
    assert list(Instance.objects.values_list("sop_instance_uid", flat=True)) == [instance]
    assert len(list(storage_root.rglob("*.dcm"))) == 1


def test_a_c_store_whose_command_uid_is_too_long_gets_0xc000_and_the_association_goes_on(
    storescu_modality, dicom_listener, storage_root, tmp_path
):
    """pynetdicom refuses to make a request of such a command set and aborts the association;
    the fast path answers it (PS3.4 B.2.3: cannot understand) and serves the next one."""
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="VETPACS")
    assert assoc.is_established
    cases = [
        (case_good, 0x0000, None),
        (case_long_uid_in_command_and_data, 0xC000, NOT_A_UID),
        (case_long_uid_in_command, 0xC000, NOT_A_UID),
        (case_good, 0x0000, None),
    ]
    answers = []
    for case, _code, comment in cases:
        status = assoc.send_c_store(case(tmp_path))  # sent as the file's bytes are
        answers.append(
            (
                case.__name__,
                status.get("Status"),
                status.get("ErrorComment", "")[: len(comment or "")] or None,
            )
        )
    assert assoc.is_established
    assoc.release()
    assert answers == [(case.__name__, code, comment) for case, code, comment in cases]


def test_query_retrieve_answers_go_with_their_command_in_one_pdu_each(nodes, archive, dicom_listener):  # noqa: F811
    """fast/worklist_scp.py QueryFind: a Pending C-FIND-RSP and its identifier in one P-DATA-TF
    (pynetdicom's own C-FIND SCP sends them as two)."""
    from pynetdicom import evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as study_root

    from tests.test_dicom_qr_find import identifier

    received = []
    ae = AE(ae_title="HOROS")
    ae.add_requested_context(study_root)
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="VETPACS", evt_handlers=[
        (evt.EVT_PDU_RECV, lambda event: received.append(type(event.pdu).__name__)),
    ])  # fmt: skip
    assert assoc.is_established
    statuses = [s.Status for s, _ in assoc.send_c_find(identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID=""),
                                                       study_root)]  # fmt: skip
    assoc.release()
    assert statuses == [0xFF00] * 3 + [0x0000]
    assert received.count("P_DATA_TF") == 4  # three answers and the final Success, one PDU each
