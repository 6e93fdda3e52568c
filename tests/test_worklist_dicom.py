"""The worklist and MPPS on a real socket: dcmtk's findscu -W as the modality would send it,
and pynetdicom for C-CANCEL and the procedure-step messages."""

import subprocess
from datetime import datetime, timedelta

import pytest
from django.utils.timezone import get_current_timezone, make_aware
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep, ModalityWorklistInformationFind

from imaging.models import PerformedProcedureStep
from tests.conftest import tool_required
from vetclinic import clock

FINDSCU = "/usr/bin/findscu"  # .venv/bin has pynetdicom's findscu under the same name


def today(hh, mm=0, days=0):
    """Worklist queries say 'today' in the clinic's time; so do the orders here."""
    now = clock.localnow()  # the clinic's clock, pinned for every test (conftest.py)
    return make_aware(
        datetime.combine(now.date() + timedelta(days=days), datetime.min.time()), get_current_timezone()
    ) + timedelta(hours=hh, minutes=mm)


@pytest.fixture
def clinic(reference_data, make_owner, make_patient, make_order, labrador):
    hartley = make_owner("Hartley", given_name="Jo")
    biscuit = make_patient("Biscuit", owner=hartley, breed=labrador, microchip="985141000123456",
                           sex="F", neutered="ALTERED")  # fmt: skip
    return {
        "thorax": make_order(biscuit, "DX-THX2", today(10), referring_vet="Okafor^Ada", weight_kg="28.5"),
        "echo": make_order(make_patient("Tiddles", owner=make_owner("Ng")), "US-ECHO", today(14)),
        "tomorrow": make_order(make_patient("Molly", owner=hartley), "DX-HIPS", today(9, days=1)),
    }


def findscu(listener, tmp_path, *keys, calling="DRROOM"):
    """Run dcmtk's findscu -W; returns (exit code, output, the response data sets)."""
    tool_required(FINDSCU)
    out = tmp_path / f"rsp-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    args = [
        FINDSCU,
        "-W",
        "-X",
        "-od",
        str(out),
        "-aet",
        calling,
        "-aec",
        "VETPACS",
        "127.0.0.1",
        str(listener.port),
    ]
    for key in keys:
        args += ["-k", key]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr, [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


# What a DR room asks: its own AE title, its modality, today; return keys (empty) for what it
# fills in, the veterinary attributes included.
DR_ROOM_QUERY = [
    "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=DRROOM",
    "ScheduledProcedureStepSequence[0].Modality=DX",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate={today}",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription",
    "ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence",
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientWeight",
    "PatientSpeciesDescription", "PatientSpeciesCodeSequence", "PatientBreedDescription",
    "PatientBreedCodeSequence", "PatientSexNeutered", "ResponsiblePerson", "ResponsiblePersonRole",
    "ResponsibleOrganization", "OtherPatientIDsSequence",
    "AccessionNumber", "RequestedProcedureID", "RequestedProcedureDescription", "StudyInstanceUID",
    "ReferringPhysicianName",
]  # fmt: skip


def test_a_dr_room_finds_todays_dog_with_owner_breed_and_chip(clinic, dicom_listener, tmp_path):
    keys = [k.format(today=clock.today().strftime("%Y%m%d")) for k in DR_ROOM_QUERY]
    code, output, found = findscu(dicom_listener, tmp_path, *keys)
    assert code == 0, output
    assert len(found) == 1, output
    item, order = found[0], clinic["thorax"]
    assert str(item.PatientName) == "Hartley^Biscuit"
    assert item.PatientID == order.patient.patient_id
    assert item.PatientSex == "F" and item.PatientSexNeutered == "ALTERED"
    assert item.PatientWeight == "28.5"
    assert item.PatientSpeciesDescription == "Canis lupus familiaris"
    assert item.PatientSpeciesCodeSequence[0].CodeValue == "448771007"
    assert item.PatientBreedCodeSequence[0].CodeMeaning == "Labrador retriever dog breed"
    assert (str(item.ResponsiblePerson), item.ResponsiblePersonRole) == ("Hartley^Jo", "OWNER")
    assert item.OtherPatientIDsSequence[0].PatientID == "985141000123456"
    assert (item.AccessionNumber, item.StudyInstanceUID) == (order.accession_number, order.study_instance_uid)
    assert item.RequestedProcedureID == order.requested_procedure_id
    assert item.RequestedProcedureDescription == "Thorax 2 views (lateral + VD/DV)"
    assert str(item.ReferringPhysicianName) == "Okafor^Ada"
    step = item.ScheduledProcedureStepSequence[0]
    assert (step.ScheduledStationAETitle, step.Modality) == ("DRROOM", "DX")
    assert step.ScheduledProcedureStepStartTime == "100000"
    assert step.ScheduledProcedureStepID == order.scheduled_step_id
    assert step.ScheduledProtocolCodeSequence[0].CodeValue == "DX-THX2"
    # Exactly the keys asked for, nothing more (PS3.4 C.4.1.1.3.2).
    asked = {k.split("=")[0] for k in DR_ROOM_QUERY if not k.startswith("Scheduled")} | {
        "ScheduledProcedureStepSequence"
    }
    assert {e.keyword for e in item} == asked


def test_name_wildcard_date_range_and_accession_queries(clinic, dicom_listener, tmp_path):
    day = clock.today()
    _, output, found = findscu(
        dicom_listener, tmp_path, "PatientName=hartley*", "ScheduledProcedureStepSequence"
    )
    assert sorted(str(ds.PatientName) for ds in found) == ["Hartley^Biscuit", "Hartley^Molly"], output
    tomorrow = (day + timedelta(days=1)).strftime("%Y%m%d")
    _, output, found = findscu(
        dicom_listener, tmp_path, "PatientName",
        f"ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate={day:%Y%m%d}-{tomorrow}",
    )  # fmt: skip
    assert sorted(str(ds.PatientName) for ds in found) == [
        "Hartley^Biscuit",
        "Hartley^Molly",
        "Ng^Tiddles",
    ], output
    _, output, found = findscu(
        dicom_listener, tmp_path, f"AccessionNumber={clinic['echo'].accession_number}", "PatientName"
    )
    assert [str(ds.PatientName) for ds in found] == ["Ng^Tiddles"], output


def test_an_unregistered_caller_is_refused(clinic, dicom_listener, tmp_path):
    code, output, found = findscu(dicom_listener, tmp_path, "PatientName=*", calling="STRANGER")
    assert code != 0 and found == []
    assert "Association Rejected" in output or "rejected" in output.lower(), output


def associate(listener, *contexts, ae_title="DRROOM"):
    ae = AE(ae_title=ae_title)
    for context in contexts:
        ae.add_requested_context(context)
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="VETPACS")
    assert assoc.is_established
    return assoc


def test_a_malformed_query_gets_a_failure_with_a_comment(clinic, dicom_listener):
    assoc = associate(dicom_listener, ModalityWorklistInformationFind)
    query = Dataset()
    query.PatientName = ""
    step = Dataset()
    step.ScheduledProcedureStepStartDate = "2026-13-45"
    query.ScheduledProcedureStepSequence = [step]
    responses = list(assoc.send_c_find(query, ModalityWorklistInformationFind))
    assoc.release()
    assert len(responses) == 1
    status, identifier = responses[0]
    assert status.Status == 0xA900
    assert "ScheduledProcedureStepStartDate" in status.ErrorComment


def test_an_identifier_that_cannot_be_read_gets_unable_to_process(clinic, dicom_listener, monkeypatch):
    import pynetdicom.association

    # Specific Character Set, then a sequence of undefined length cut off inside its item.
    cut = (b"\x08\x00\x05\x00\x0a\x00\x00\x00ISO_IR 100\x40\x00\x00\x01\xff\xff\xff\xff"
           b"\xfe\xff\x00\xe0\xff\xff\xff\xff\x08\x00\x60\x00\x40\x00\x00\x00DX")  # fmt: skip
    monkeypatch.setattr(pynetdicom.association, "encode", lambda *args, **kwargs: cut)
    assoc = associate(dicom_listener, ModalityWorklistInformationFind)
    query = Dataset()
    query.PatientName = ""
    responses = list(assoc.send_c_find(query, ModalityWorklistInformationFind))
    assoc.release()
    assert len(responses) == 1
    status, identifier = responses[0]
    assert 0xC000 <= status.Status <= 0xCFFF
    assert status.ErrorComment == "Cannot read the query identifier"


def listener_backends():
    """The PostgreSQL backends on the test database other than this process's own."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return {pid for (pid,) in cursor.fetchall()}


def test_associations_reuse_the_listeners_database_connections(clinic, dicom_listener):
    """Each association gives its connection back to the listener's pool when it ends: forty
    more associations, each with a worklist query, open no new connection (and leak none)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the listener pools connections on PostgreSQL only")
    query = Dataset()
    query.PatientName = "HARTLEY*"
    query.ScheduledProcedureStepSequence = []

    def one_association():
        assoc = associate(dicom_listener, ModalityWorklistInformationFind)
        statuses = [status.Status for status, _ in assoc.send_c_find(query, ModalityWorklistInformationFind)]
        assoc.release()
        assert statuses == [0xFF00, 0xFF00, 0x0000]

    for _ in range(3):  # the pool opens its first connections meanwhile
        one_association()
    before = listener_backends()
    for _ in range(40):
        one_association()
    assert before and listener_backends() <= before


def mpps_create(assoc, order, status="IN PROGRESS", uid=None, with_steps=True):
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedStationAETitle = "DRROOM"
    ds.Modality = "DX"
    ds.PerformedProcedureStepStartDate = "20261123"
    ds.PerformedProcedureStepStartTime = "101500"
    ds.PatientName = "Hartley^Biscuit"
    if with_steps:
        step = Dataset()
        step.AccessionNumber = order.accession_number
        step.StudyInstanceUID = order.study_instance_uid
        step.RequestedProcedureID = order.requested_procedure_id
        step.ScheduledProcedureStepID = order.scheduled_step_id
        ds.ScheduledStepAttributesSequence = [step]
    status_ds, attrs = assoc.send_n_create(ds, ModalityPerformedProcedureStep, uid or generate_uid())
    return status_ds.Status, status_ds.get("ErrorComment", "")


def mpps_set(assoc, uid, status, series=1):
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20261123"
    ds.PerformedProcedureStepEndTime = "103000"
    items = []
    for _ in range(series):
        item = Dataset()
        item.SeriesInstanceUID = generate_uid()
        item.SeriesDescription = "Thorax LAT"
        image = Dataset()
        image.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
        image.ReferencedSOPInstanceUID = generate_uid()
        item.ReferencedImageSequence = [image, image]
        items.append(item)
    ds.PerformedSeriesSequence = items
    status_ds, attrs = assoc.send_n_set(ds, ModalityPerformedProcedureStep, uid)
    return status_ds.Status, status_ds.get("ErrorComment", "")


def test_mpps_moves_the_order_to_in_progress_then_completed(clinic, dicom_listener):
    order = clinic["thorax"]
    assoc = associate(dicom_listener, ModalityPerformedProcedureStep)
    uid = generate_uid()
    assert mpps_create(assoc, order, uid=uid) == (0x0000, "")
    order.refresh_from_db()
    assert order.status == "in_progress"
    assert mpps_set(assoc, uid, "COMPLETED", series=2) == (0x0000, "")
    order.refresh_from_db()
    assert order.status == "completed"
    step = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert (step.order, step.status, step.station_ae) == (order, "COMPLETED", "DRROOM")
    assert [s["images"] for s in step.performed_series] == [2, 2]
    assert step.ended_at is not None
    assert [c.channel for c in order.status_changes.all()][-2:] == ["dicom", "dicom"]
    # A final step may no longer change (F.7.2.2.4).
    status, comment = mpps_set(assoc, uid, "DISCONTINUED")
    assert status == 0x0110 and "COMPLETED" in comment
    assoc.release()


def test_a_discontinued_step_lets_the_order_be_rescheduled(clinic, dicom_listener, actor):
    from imaging.orders.services import order_reschedule

    order = clinic["echo"]
    assoc = associate(dicom_listener, ModalityPerformedProcedureStep, ae_title="USROOM")
    uid = generate_uid()
    assert mpps_create(assoc, order, uid=uid)[0] == 0x0000
    assert mpps_set(assoc, uid, "DISCONTINUED", series=0)[0] == 0x0000
    assoc.release()
    order.refresh_from_db()
    assert order.status == "discontinued"
    order = order_reschedule(actor=actor, order=order, scheduled_start=today(15, days=1))
    assert order.status == "scheduled"


def test_mpps_errors_have_the_annex_f_statuses(clinic, dicom_listener):
    order = clinic["thorax"]
    assoc = associate(dicom_listener, ModalityPerformedProcedureStep)
    uid = generate_uid()
    assert mpps_create(assoc, order, uid=uid)[0] == 0x0000
    assert mpps_create(assoc, order, uid=uid)[0] == 0x0111  # duplicate SOP instance
    assert mpps_create(assoc, order, status="COMPLETED")[0] == 0x0106  # must start IN PROGRESS
    assert mpps_create(assoc, order, with_steps=False)[0] == 0x0120  # no Scheduled Step Attributes
    assert mpps_set(assoc, generate_uid(), "COMPLETED")[0] == 0x0112  # no such instance
    assert mpps_set(assoc, uid, "FINISHED")[0] == 0x0106  # not a step status
    assoc.release()
    assert PerformedProcedureStep.objects.count() == 1
    assert PerformedProcedureStep.objects.get().status == "IN PROGRESS"
