"""What a registered node may do (imaging.Modality may_store / may_query), enforced by the
listener on a real socket: decided once when it associates, refused per request with 0124H
"Refused: Not Authorized" and an Error Comment (PS3.7 Annex C), and refused altogether when the
database cannot say."""

from pathlib import Path

import pydicom
import pytest
from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    StorageCommitmentPushModel,
    StorageCommitmentPushModelInstance,
)

from imaging.models import Instance, Modality, StorageCommitment
from tests.test_dicom_store import TEST_FILES

NOT_AUTHORIZED = 0x0124


def associate(listener, calling):
    ae = AE(ae_title=calling)
    for context in (CTImageStorage, ModalityWorklistInformationFind, ModalityPerformedProcedureStep,
                    StorageCommitmentPushModel):  # fmt: skip
        ae.add_requested_context(context, ExplicitVRLittleEndian)
    return ae.associate("127.0.0.1", listener.port, ae_title="VETPACS")


def large_ct(folder):
    """A CT slice of 512 x 512 (512 KiB of pixels): it arrives over several PDUs, so the fast
    path starts writing it to storage before the handler sees it."""
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Rows = ds.Columns = 512
    ds.PixelData = bytes(512 * 512 * 2)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = Path(folder) / "large.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def worklist_query(assoc):
    query = Dataset()
    query.PatientName = "*"
    query.ScheduledProcedureStepSequence = [Dataset()]
    return [(status.Status, status.get("ErrorComment")) for status, _ in
            assoc.send_c_find(query, ModalityWorklistInformationFind)]  # fmt: skip


def commitment_ask(assoc):
    request = Dataset()
    request.TransactionUID = generate_uid()
    request.ReferencedSOPSequence = [Dataset()]
    request.ReferencedSOPSequence[0].ReferencedSOPClassUID = CTImageStorage
    request.ReferencedSOPSequence[0].ReferencedSOPInstanceUID = generate_uid()
    status, _ = assoc.send_n_action(
        request, 1, StorageCommitmentPushModel, StorageCommitmentPushModelInstance
    )
    return status.Status, status.get("ErrorComment")


def procedure_step_create(assoc):
    step = Dataset()
    step.PerformedProcedureStepStatus = "IN PROGRESS"
    status, _ = assoc.send_n_create(step, ModalityPerformedProcedureStep, generate_uid())
    return status.Status, status.get("ErrorComment")


def stored_files(storage_root):
    return [path for path in storage_root.rglob("*") if path.is_file()] if storage_root.exists() else []


def test_a_node_that_may_not_store_is_refused_store_commitment_and_mpps_but_may_query(
    reference_data, dicom_listener, storage_root, tmp_path
):
    Modality.objects.create(ae_title="VIEWER", host="127.0.0.1", modality_type="OT", may_store=False)
    assoc = associate(dicom_listener, "VIEWER")
    assert assoc.is_established

    status = assoc.send_c_store(large_ct(tmp_path))
    assert (status.Status, status.ErrorComment) == (
        NOT_AUTHORIZED,
        "VIEWER may not store here (ask the PACS admin)",
    )
    assert commitment_ask(assoc) == (NOT_AUTHORIZED, "VIEWER may not store here (ask the PACS admin)")
    assert procedure_step_create(assoc) == (NOT_AUTHORIZED, "VIEWER may not store here (ask the PACS admin)")
    assert worklist_query(assoc) == [(0x0000, None)]  # nothing scheduled, but it may ask
    assoc.release()

    assert stored_files(storage_root) == []  # not even the part the fast path wrote as it came
    assert not StorageCommitment.objects.exists()
    assert "VIEWER refused: it may not store" in dicom_listener.log.read_text()


def test_a_node_that_may_not_query_is_refused_the_worklist_but_may_store(
    reference_data, dicom_listener, tmp_path
):
    Modality.objects.create(ae_title="DRROOM", host="127.0.0.1", modality_type="DX", may_query=False)
    assoc = associate(dicom_listener, "DRROOM")
    assert worklist_query(assoc) == [(NOT_AUTHORIZED, "DRROOM may not query here (ask the PACS admin)")]
    assert assoc.send_c_store(large_ct(tmp_path)).Status == 0x0000
    assoc.release()


def test_a_change_of_rights_applies_from_the_next_association(reference_data, dicom_listener, tmp_path):
    node = Modality.objects.create(ae_title="CTROOM", host="127.0.0.1", modality_type="CT")
    before = associate(dicom_listener, "CTROOM")
    node.may_store = False
    node.save()
    assert before.send_c_store(large_ct(tmp_path)).Status == 0x0000  # decided when it associated
    before.release()
    after = associate(dicom_listener, "CTROOM")
    assert after.send_c_store(large_ct(tmp_path)).Status == NOT_AUTHORIZED
    after.release()
    assert Instance.objects.count() == 0  # (no worker here: stored, not indexed)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a SQLite file has no server to lose")
def test_when_the_database_cannot_say_what_a_node_may_do_it_is_refused(
    reference_data, dicom_listener, tmp_path
):
    Modality.objects.create(ae_title="CTROOM", host="127.0.0.1", modality_type="CT")
    ours = connection.cursor().connection.info.backend_pid  # this test's connection stays
    settings = {**connection.settings_dict, "NAME": "postgres"}  # the server's own database
    with DatabaseWrapper(settings).cursor() as server:  # an outage, for every connection but ours
        server.execute(f'ALTER DATABASE "{connection.settings_dict["NAME"]}" ALLOW_CONNECTIONS false')
        server.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
            [connection.settings_dict["NAME"], ours],
        )
        try:
            assoc = associate(dicom_listener, "CTROOM")
            # PS3.8 9.3.4: rejected-transient, service-provider (presentation), temporary congestion.
            assert assoc.is_rejected
            assert (assoc.acceptor.primitive.result, assoc.acceptor.primitive.result_source,
                    assoc.acceptor.primitive.diagnostic) == (0x02, 0x03, 0x01)  # fmt: skip
        finally:
            server.execute(f'ALTER DATABASE "{connection.settings_dict["NAME"]}" ALLOW_CONNECTIONS true')
    log = dicom_listener.log.read_text()
    assert "refused association from CTROOM at 127.0.0.1: cannot check the caller now" in log
