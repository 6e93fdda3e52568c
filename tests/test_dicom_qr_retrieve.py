"""C-MOVE and C-GET from the listener on a real socket (issue 15): studies stored through it
with dcmtk, retrieved with dcmtk's movescu (into a storescp this test starts and registers as the
move destination) and getscu, and with pynetdicom where a status must be read (refusals,
C-CANCEL, a failed sub-operation). "Byte for byte": the data set a peer receives is the one the
listener stored, when the peer accepts its transfer syntax; otherwise it arrives decompressed,
with the same pixels."""

import io
import signal
import socket
import subprocess
import threading
import types
from pathlib import Path

import numpy
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from imaging.archive.retrieve import (
    PATIENT_ROOT,
    STUDY_ROOT,
    RetrieveKeys,
    RetrieveRefusal,
    RetrieveRefused,
    instances_retrieve,
    retrieve_keys,
)
from imaging.ingest import storage
from imaging.models import Instance, Modality
from tests.conftest import free_port, tool_required, wait_for
from tests.studies import make_study, stored_header
from tests.test_s3_storage import s3  # noqa: F401  # the fixture: moto's S3 server
from vetclinic.audit.models import AuditEntry

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"  # bundled: no download
PATIENT_ID = "RETR-0001"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
RLE = "1.2.840.10008.1.2.5"


@pytest.fixture
def nodes(reference_data):
    """The sender that stores, a workstation that may retrieve, and one that may not."""
    return types.SimpleNamespace(
        storer=Modality.objects.create(ae_title="STORESCU", host="127.0.0.1", modality_type="CT"),
        retriever=Modality.objects.create(
            ae_title="RETRIEVER", host="127.0.0.1", modality_type="OT", may_retrieve=True
        ),
        nosy=Modality.objects.create(ae_title="NOSY", host="127.0.0.1", modality_type="OT"),
    )


@pytest.fixture
def storescp_start(tmp_path):
    """dcmtk's storescp writing what it receives as it came (+B), registered as a move
    destination under ``ae_title``; ``options`` say which transfer syntaxes it accepts."""
    storescp = tool_required("/usr/bin/storescp")
    started = []

    def start(ae_title, *options):
        folder = tmp_path / ae_title
        folder.mkdir()
        port = free_port()
        process = subprocess.Popen(
            [storescp, "+B", *options, "-aet", ae_title, "-od", str(folder), str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        started.append(process)

        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()  # storescp shrugs this off
                return True
            except OSError:
                return False

        wait_for(listening, timeout=20, message="storescp")
        Modality.objects.create(
            ae_title=ae_title, host="127.0.0.1", port=port, modality_type="OT", move_destination=True
        )
        return types.SimpleNamespace(ae_title=ae_title, port=port, folder=folder)

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def fresh_copy(name, folder, *, study_uid, series_uid):
    """A bundled test file under new UIDs, in the given study and series, of our patient."""
    ds = pydicom.dcmread(TEST_FILES / name)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.PatientID = PATIENT_ID
    path = Path(folder) / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path)  # compressed pixel data is written back as it was
    return path


def dataset_bytes(part10):
    """The data set of a Part 10 file, without preamble and file meta."""
    fp = io.BytesIO(part10)
    pydicom.filereader.read_preamble(fp, False)
    pydicom.filereader._read_file_meta_info(fp)
    return part10[fp.tell() :]


@pytest.fixture
def archive(nodes, dicom_listener, celery_worker, storage_root, tmp_path):
    """Two studies of one patient stored through the listener with dcmsend (as the files are)
    and indexed by a worker: one uncompressed (a CT and an MR series), one compressed (a JPEG
    2000 lossless MR and a two-frame RGB RLE secondary capture)."""
    studies = {"plain": generate_uid(), "compressed": generate_uid()}
    layout = [("plain", "CT_small.dcm"), ("plain", "MR_small.dcm"),
              ("compressed", "MR_small_jp2klossless.dcm"), ("compressed", "SC_rgb_rle_2frame.dcm")]  # fmt: skip
    files = {
        name: fresh_copy(name, tmp_path, study_uid=studies[study], series_uid=generate_uid())
        for study, name in layout
    }
    result = subprocess.run(
        [tool_required("/usr/bin/dcmsend"), "-aet", "STORESCU", "-aec", "VETPACS", "127.0.0.1",
         str(dicom_listener.port), *map(str, files.values())],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: Instance.objects.count() >= len(files), message="the studies indexed")
    instances = {}
    for name, path in files.items():
        sent = pydicom.dcmread(path, stop_before_pixels=True)
        instances[name] = Instance.objects.select_related("series__study").get(
            sop_instance_uid=sent.SOPInstanceUID
        )
    assert instances["MR_small_jp2klossless.dcm"].transfer_syntax_uid == J2K_LOSSLESS
    assert instances["SC_rgb_rle_2frame.dcm"].transfer_syntax_uid == RLE
    return types.SimpleNamespace(
        listener=dicom_listener, studies=studies, files=files, instances=instances,
        stored=lambda name: dataset_bytes((storage_root / instances[name].storage_key).read_bytes()),
    )  # fmt: skip


def received(folder):
    """What a storescp or getscu wrote, by SOP Instance UID: (data set bytes, transfer syntax)."""
    copies = {}
    for path in Path(folder).iterdir():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        copies[str(ds.SOPInstanceUID)] = (
            dataset_bytes(path.read_bytes()),
            str(ds.file_meta.TransferSyntaxUID),
        )
        path.unlink()  # the next retrieve's objects alone
    return copies


def dcmtk(tool, listener, *arguments):
    result = subprocess.run(
        [tool_required(f"/usr/bin/{tool}"), "-aet", "RETRIEVER", "-aec", "VETPACS", *arguments,
         "127.0.0.1", str(listener.port)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_movescu_at_each_level_gets_what_was_stored_byte_for_byte(archive, storescp_start):
    destination = storescp_start("WORKSTATION", "+xa")  # accepts every transfer syntax
    uid = {name: instance.sop_instance_uid for name, instance in archive.instances.items()}
    by_uid = {instance.sop_instance_uid: name for name, instance in archive.instances.items()}

    def moved(*keys, model="-S"):
        dcmtk(
            "movescu",
            archive.listener,
            model,
            "-aem",
            "WORKSTATION",
            *[arg for key in keys for arg in ("-k", key)],
        )
        copies = received(destination.folder)
        for sop_uid, (data, _syntax) in copies.items():
            assert data == archive.stored(by_uid[sop_uid]), by_uid[sop_uid]
        return {by_uid[sop_uid] for sop_uid in copies}

    assert moved("QueryRetrieveLevel=STUDY", f"StudyInstanceUID={archive.studies['compressed']}") == {
        "MR_small_jp2klossless.dcm", "SC_rgb_rle_2frame.dcm"
    }  # fmt: skip
    series = archive.instances["MR_small.dcm"].series
    assert moved("QueryRetrieveLevel=SERIES", f"StudyInstanceUID={series.study.study_instance_uid}",
                 f"SeriesInstanceUID={series.series_instance_uid}") == {"MR_small.dcm"}  # fmt: skip
    # A list of UIDs at the retrieve's level (PS3.4 C.4.2.2.1)
    both = f"{uid['CT_small.dcm']}\\{uid['SC_rgb_rle_2frame.dcm']}"
    assert moved("QueryRetrieveLevel=IMAGE", f"SOPInstanceUID={both}") == {
        "CT_small.dcm",
        "SC_rgb_rle_2frame.dcm",
    }
    # Patient Root, the whole patient
    assert moved("QueryRetrieveLevel=PATIENT", f"PatientID={PATIENT_ID}", model="-P") == set(archive.files)

    study = archive.instances["MR_small_jp2klossless.dcm"].series.study
    entry = AuditEntry.objects.filter(action="retrieve", object_id=str(study.pk)).order_by("at", "id").first()
    assert entry.actor == "RETRIEVER" and entry.channel == "dicom"
    assert entry.changes == {
        "service": [None, "C-MOVE"], "level": [None, "STUDY"],
        "keys": [None, f"StudyInstanceUID={archive.studies['compressed']}"],
        "destination": [None, "WORKSTATION"], "instances": [None, 2], "completed": [None, 2],
        "failed": [None, 0], "warning": [None, 0],
    }  # fmt: skip


def test_a_peer_that_takes_only_uncompressed_objects_gets_them_decompressed(
    archive, storescp_start, tmp_path
):
    destination = storescp_start("UNCOMPRESSED", "+xe")  # explicit VR little endian first; nothing compressed
    study = "-k", f"StudyInstanceUID={archive.studies['compressed']}"
    dcmtk("movescu", archive.listener, "-S", "-aem", "UNCOMPRESSED", "-k", "QueryRetrieveLevel=STUDY", *study)
    gotten = tmp_path / "getscu"
    gotten.mkdir()
    # getscu proposes the storage classes (SCP role) with the +x syntaxes: uncompressed only here.
    dcmtk(
        "getscu", archive.listener, "-S", "+xe", "-od", str(gotten), "-k", "QueryRetrieveLevel=STUDY", *study
    )

    def arrived(folder):
        return {
            str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID): path
            for path in folder.iterdir()
        }

    moved, got = arrived(destination.folder), arrived(gotten)
    names = ("MR_small_jp2klossless.dcm", "SC_rgb_rle_2frame.dcm")
    assert set(moved) == set(got) == {archive.instances[name].sop_instance_uid for name in names}
    for name in names:
        original = pydicom.dcmread(archive.files[name])
        for way, copies in (("C-MOVE", moved), ("C-GET", got)):
            copy = pydicom.dcmread(copies[original.SOPInstanceUID])
            assert copy.file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian, ImplicitVRLittleEndian), way
            assert numpy.array_equal(copy.pixel_array, original.pixel_array), (name, way)
            assert copy.PatientID == original.PatientID  # the same object, its pixels decoded


def test_getscu_gets_what_was_stored_byte_for_byte(archive, tmp_path):
    folder = tmp_path / "getscu"
    folder.mkdir()
    by_uid = {instance.sop_instance_uid: name for name, instance in archive.instances.items()}
    dcmtk("getscu", archive.listener, "-S", "+B", "-od", str(folder), "-k", "QueryRetrieveLevel=STUDY",
          "-k", f"StudyInstanceUID={archive.studies['plain']}")  # fmt: skip
    copies = received(folder)
    assert {by_uid[uid] for uid in copies} == {"CT_small.dcm", "MR_small.dcm"}
    for sop_uid, (data, _syntax) in copies.items():
        assert data == archive.stored(by_uid[sop_uid]), by_uid[sop_uid]
    # A peer that proposes JPEG 2000 lossless for MR gets the JPEG 2000 object as stored.
    series = archive.instances["MR_small_jp2klossless.dcm"].series
    dcmtk("getscu", archive.listener, "-S", "+B", "+xv", "-od", str(folder), "-k", "QueryRetrieveLevel=SERIES",
          "-k", f"SeriesInstanceUID={series.series_instance_uid}")  # fmt: skip
    copies = received(folder)
    assert list(copies) == [archive.instances["MR_small_jp2klossless.dcm"].sop_instance_uid]
    data, syntax = next(iter(copies.values()))
    assert syntax == J2K_LOSSLESS and data == archive.stored("MR_small_jp2klossless.dcm")
    assert AuditEntry.objects.filter(action="retrieve", changes__service=[None, "C-GET"]).count() == 2


def test_getscu_proposing_a_compressed_syntax_first_gets_every_object(archive, tmp_path):
    """getscu +xs proposes each storage class (SCP role) in one context, JPEG Lossless first and
    the uncompressed syntaxes after. We cannot write JPEG Lossless: the listener accepts Explicit
    VR Little Endian there instead (PS3.8 9.3.3.2, the acceptor's choice), so the uncompressed
    objects arrive byte for byte and the compressed ones decompressed; it used to accept JPEG
    Lossless, and then no object stored otherwise could go. getscu +xv (JPEG 2000 lossless
    first), which we can write: the JPEG 2000 object as stored, the others compressed into it
    losslessly (the same pixels)."""
    folder = tmp_path / "getscu"
    folder.mkdir()
    names = {instance.sop_instance_uid: name for name, instance in archive.instances.items()}

    def get(option, study):
        dcmtk("getscu", archive.listener, "-S", "+B", option, "-od", str(folder), "-k", "QueryRetrieveLevel=STUDY",
              "-k", f"StudyInstanceUID={archive.studies[study]}")  # fmt: skip
        copies = {names[str(pydicom.dcmread(path).SOPInstanceUID)]: path for path in folder.iterdir()}
        arrived = {
            name: (pydicom.dcmread(path), dataset_bytes(path.read_bytes())) for name, path in copies.items()
        }
        for path in copies.values():
            path.unlink()
        return arrived

    def same_pixels(name, copy):
        return numpy.array_equal(copy.pixel_array, pydicom.dcmread(archive.files[name]).pixel_array)

    plain, compressed = get("+xs", "plain"), get("+xs", "compressed")
    assert set(plain) == {"CT_small.dcm", "MR_small.dcm"}
    assert set(compressed) == {"MR_small_jp2klossless.dcm", "SC_rgb_rle_2frame.dcm"}
    for name, (copy, data) in plain.items():
        assert copy.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian and data == archive.stored(name), (
            name
        )
    for name, (copy, _data) in compressed.items():
        assert copy.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian and same_pixels(name, copy), name

    plain, compressed = get("+xv", "plain"), get("+xv", "compressed")
    for name, (copy, _data) in plain.items():
        assert copy.file_meta.TransferSyntaxUID == J2K_LOSSLESS and same_pixels(name, copy), name
    copy, data = compressed["MR_small_jp2klossless.dcm"]
    assert copy.file_meta.TransferSyntaxUID == J2K_LOSSLESS and data == archive.stored(
        "MR_small_jp2klossless.dcm"
    )
    copy, _data = compressed["SC_rgb_rle_2frame.dcm"]
    assert copy.file_meta.TransferSyntaxUID == J2K_LOSSLESS and same_pixels("SC_rgb_rle_2frame.dcm", copy)


def move_association(listener, ae_title="RETRIEVER"):
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelMove)
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="VETPACS")
    assert assoc.is_established
    return assoc


def study_identifier(study_uid, level="STUDY"):
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    identifier.StudyInstanceUID = study_uid
    return identifier


def move(assoc, identifier, destination, model=StudyRootQueryRetrieveInformationModelMove):
    return list(assoc.send_c_move(identifier, destination, model))


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the wildcard UID, on purpose
def test_refusals_carry_a_status_and_an_error_comment(nodes, dicom_listener, storage_root, storescp_start):
    study = make_study(images=1)
    storescp_start("WORKSTATION", "+xa")
    assoc = move_association(dicom_listener)
    try:
        [(status, _)] = move(assoc, study_identifier(study.study_instance_uid), "NOWHERE")
        assert status.Status == 0xA801 and "NOWHERE" in status.ErrorComment
        # An identifier that names nothing the way a retrieve must (PS3.4 C.4.2.1.4).
        for identifier in (study_identifier("1.2.3.*"), study_identifier(study.study_instance_uid, "FRAME"),
                           study_identifier("", "SERIES")):  # fmt: skip
            [(status, _)] = move(assoc, identifier, "WORKSTATION")
            assert status.Status == 0xA900 and status.ErrorComment, identifier
        [(status, _)] = move(assoc, study_identifier(generate_uid()), "WORKSTATION")  # names nothing
        assert status.Status == 0x0000 and status.NumberOfCompletedSuboperations == 0
        assert not AuditEntry.objects.filter(action="retrieve").exists()  # nothing was named, nothing sent
        # Registered, but nobody listens there: 0xA801 as well (PS3.4 C.4.2.1.4); the attempt is audited.
        Modality.objects.create(ae_title="GONE", host="127.0.0.1", port=free_port(), modality_type="OT",
                                move_destination=True)  # fmt: skip
        [(status, _)] = move(assoc, study_identifier(study.study_instance_uid), "GONE")
        assert status.Status == 0xA801 and "GONE" in status.ErrorComment
        entry = AuditEntry.objects.get(action="retrieve")
        assert (entry.changes["destination"], entry.changes["completed"]) == ([None, "GONE"], [None, 0])
    finally:
        assoc.release()
    assoc = move_association(dicom_listener, ae_title="NOSY")  # registered, may not retrieve
    try:
        [(status, _)] = move(assoc, study_identifier(study.study_instance_uid), "WORKSTATION")
        assert status.Status == 0x0124 and "NOSY may not retrieve" in status.ErrorComment
    finally:
        assoc.release()
    assert AuditEntry.objects.filter(action="retrieve").count() == 1  # the refusals wrote none


def test_a_missing_file_fails_its_sub_operation_and_the_others_go(
    nodes, dicom_listener, storage_root, storescp_start
):
    study = make_study(series=1, images=3)
    destination = storescp_start("WORKSTATION", "+xa")
    lost = Instance.objects.filter(series__study=study).order_by("instance_number")[1]
    (storage_root / lost.storage_key).unlink()
    assoc = move_association(dicom_listener)
    try:
        responses = move(assoc, study_identifier(study.study_instance_uid), "WORKSTATION")
    finally:
        assoc.release()
    assert assoc.is_released  # not aborted
    *pending, (final, identifier) = responses
    assert [status.Status for status, _ in pending] == [0xFF00] * 3
    assert [status.NumberOfRemainingSuboperations for status, _ in pending] == [2, 1, 0]
    assert final.Status == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (2, 1)
    assert identifier.FailedSOPInstanceUIDList == lost.sop_instance_uid
    assert len(received(destination.folder)) == 2
    entry = AuditEntry.objects.get(action="retrieve")
    assert (entry.changes["completed"], entry.changes["failed"]) == ([None, 2], [None, 1])


def test_c_cancel_stops_a_move(nodes, dicom_listener, storage_root):
    study = make_study(series=1, images=6)
    first_arrived, cancel_sent = threading.Event(), threading.Event()
    stored = []

    def on_store(event):
        stored.append(event.request.AffectedSOPInstanceUID)
        first_arrived.set()
        cancel_sent.wait(timeout=30)  # the first object is held until the C-CANCEL has gone out
        return 0x0000

    port = free_port()
    workstation = AE(ae_title="CANCELLER")
    workstation.supported_contexts = StoragePresentationContexts
    server = workstation.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    Modality.objects.create(ae_title="CANCELLER", host="127.0.0.1", port=port, modality_type="OT",
                            move_destination=True)  # fmt: skip
    assoc = move_association(dicom_listener)
    try:
        responses = assoc.send_c_move(study_identifier(study.study_instance_uid), "CANCELLER",
                                      StudyRootQueryRetrieveInformationModelMove)  # fmt: skip
        assert first_arrived.wait(timeout=30)
        context = next(cx for cx in assoc.accepted_contexts
                       if cx.abstract_syntax == StudyRootQueryRetrieveInformationModelMove)  # fmt: skip
        assoc.send_c_cancel(1, context.context_id)  # send_c_move's message ID
        cancel_sent.set()
        statuses = [status for status, _ in responses]
    finally:
        assoc.release()
        server.shutdown()
    final = statuses[-1]
    assert final.Status == 0xFE00
    assert final.NumberOfRemainingSuboperations > 0
    assert final.NumberOfCompletedSuboperations == len(stored) < 6


def test_c_cancel_stops_a_get_even_while_a_sub_operation_waits_for_its_answer(
    nodes, dicom_listener, storage_root
):
    """The requestor sends its C-CANCEL before it answers the first C-STORE: the listener, waiting
    for that answer on the same association, hears the C-CANCEL (PS3.4 C.4.3.3.1) and stops."""
    study = make_study(series=1, images=6)
    stored = []

    def on_store(event):
        stored.append(event.request.AffectedSOPInstanceUID)
        if len(stored) == 1:
            context = next(cx for cx in event.assoc.accepted_contexts
                           if cx.abstract_syntax == StudyRootQueryRetrieveInformationModelGet)  # fmt: skip
            event.assoc.send_c_cancel(1, context.context_id)  # send_c_get's message ID
        return 0x0000

    ae = AE(ae_title="RETRIEVER")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="VETPACS",
                         ext_neg=[build_role(CTImageStorage, scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])  # fmt: skip
    assert assoc.is_established
    try:
        query = study_identifier(study.study_instance_uid)
        statuses = [
            status for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)
        ]
    finally:
        assoc.release()
    final = statuses[-1]
    assert final.Status == 0xFE00
    assert final.NumberOfRemainingSuboperations > 0
    assert final.NumberOfCompletedSuboperations == len(stored) < 6


def test_c_get_sends_on_the_callers_association_in_the_syntax_it_accepts(nodes, dicom_listener, storage_root):
    """A pynetdicom C-GET SCU taking CT images in implicit VR only: the objects, stored in
    explicit VR, arrive re-encoded with every element the same; one that proposes no storage
    context with the SCP role gets each sub-operation failed, listed, and no abort."""
    study = make_study(series=1, images=3)
    arrived = []

    def on_store(event):
        arrived.append((event.context.transfer_syntax, event.dataset))
        return 0x0000

    def get(*storage, roles=()):
        ae = AE(ae_title="RETRIEVER")
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        for sop_class, syntax in storage:
            ae.add_requested_context(sop_class, syntax)
        assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="VETPACS", ext_neg=list(roles),
                             evt_handlers=[(evt.EVT_C_STORE, on_store)])  # fmt: skip
        assert assoc.is_established
        try:
            query = study_identifier(study.study_instance_uid)
            return list(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))
        finally:
            assoc.release()

    *pending, (final, _) = get(
        (CTImageStorage, ImplicitVRLittleEndian), roles=[build_role(CTImageStorage, scp_role=True)]
    )
    assert len(pending) == 3 and final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 3
    assert {syntax for syntax, _ in arrived} == {ImplicitVRLittleEndian}
    for instance in Instance.objects.filter(series__study=study):
        kept = stored_header(instance)
        copy = next(ds for _, ds in arrived if ds.SOPInstanceUID == instance.sop_instance_uid)
        assert [(e.tag, e.value) for e in copy] == [(e.tag, e.value) for e in kept]

    *_, (final, identifier) = get()  # no storage context with the SCP role (PS3.4 C.4.3.1)
    assert final.Status == 0xA702 and final.NumberOfFailedSuboperations == 3
    uids = set(Instance.objects.filter(series__study=study).values_list("sop_instance_uid", flat=True))
    assert set(identifier.FailedSOPInstanceUIDList) == uids


def identifier(**keys):
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(
    ("keys", "levels", "named"),
    [
        ({"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": ["1.2.3", "1.2.4"]}, STUDY_ROOT,
         ("STUDY", {"StudyInstanceUID": ("1.2.3", "1.2.4")})),
        ({"QueryRetrieveLevel": "IMAGE", "StudyInstanceUID": "1.2", "SeriesInstanceUID": "", "SOPInstanceUID": "1.5"},
         STUDY_ROOT, ("IMAGE", {"StudyInstanceUID": ("1.2",), "SOPInstanceUID": ("1.5",)})),
        ({"QueryRetrieveLevel": "PATIENT", "PatientID": "RETR-1 "}, PATIENT_ROOT, ("PATIENT", {"PatientID": ("RETR-1",)})),
    ],
)  # fmt: skip
def test_a_retrieve_names_instances_by_unique_keys(keys, levels, named):
    found = retrieve_keys(identifier(**keys), levels=levels)
    assert (found.level, found.keys) == named


@pytest.mark.parametrize(
    ("keys", "levels", "why"),
    [
        ({"QueryRetrieveLevel": "PATIENT", "PatientID": "X"}, STUDY_ROOT, "Query/Retrieve Level"),
        ({"StudyInstanceUID": "1.2.3"}, STUDY_ROOT, "Query/Retrieve Level"),
        ({"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": "1.2"}, STUDY_ROOT, "SeriesInstanceUID is required"),
        ({"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.*"}, STUDY_ROOT, "UIDs only"),
        ({"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": ["1.2", "1.3"], "SeriesInstanceUID": "1.4"},
         STUDY_ROOT, "one value above"),
        ({"QueryRetrieveLevel": "PATIENT", "PatientID": "RETR*"}, PATIENT_ROOT, "no wildcards"),
    ],
)  # fmt: skip
@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the wildcard UID, on purpose
def test_an_identifier_that_names_nothing_the_way_a_retrieve_must_is_refused(keys, levels, why):
    with pytest.raises(RetrieveRefused) as refused:
        retrieve_keys(identifier(**keys), levels=levels)
    assert refused.value.reason is RetrieveRefusal.IDENTIFIER and why in refused.value.detail


def test_a_patient_level_retrieve_goes_by_the_records_patient_id_when_linked(make_patient, storage_root):
    """A study linked to an animal has the record's Patient ID (C-FIND answers with it); an
    unlinked one, what its headers said."""
    animal = make_patient(patient_id="VET-42")
    linked = make_study(patient=animal, patient_id="HEADER-1", link="patient_id")
    unlinked = make_study(patient_id="HEADER-2")

    def studies(patient_id):
        keys = RetrieveKeys(level="PATIENT", keys={"PatientID": (patient_id,)})
        return {instance.study_id for instance in instances_retrieve(keys)}

    assert studies("VET-42") == {linked.pk}
    assert studies("HEADER-1") == set()
    assert studies("HEADER-2") == {unlinked.pk}


def test_a_move_sends_objects_kept_in_s3_as_they_are(s3, nodes, dicom_listener_start, storescp_start):  # noqa: F811
    """With STORAGE_BACKEND=s3 each object is streamed from the bucket to a temporary file and
    sent from it (archive/transcode.instance_path), byte for byte."""
    study = make_study(series=1, images=2)  # written to the bucket
    listener = dicom_listener_start()
    destination = storescp_start("WORKSTATION", "+xa")
    assoc = move_association(listener)
    try:
        *_, (final, _) = move(assoc, study_identifier(study.study_instance_uid), "WORKSTATION")
    finally:
        assoc.release()
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 2
    copies = received(destination.folder)
    for instance in Instance.objects.filter(series__study=study):
        assert copies[instance.sop_instance_uid][0] == dataset_bytes(storage.object_get(instance.storage_key))
