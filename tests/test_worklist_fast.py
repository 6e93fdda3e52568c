"""The worklist answers the listener sends (encoded by datasets.worklist_answer; as they are by the
fast path's worklist_scp.WorklistFind), must be
the same data sets pydicom would have written for worklist_response: checked on a real socket
with dcmtk's findscu (explicit and implicit VR), and with pynetdicom for the transfer syntaxes
pydicom encodes for us, answers split over several PDUs, and C-CANCEL mid-answers."""

import subprocess
from datetime import datetime, timedelta
from io import BytesIO

import pytest
from django.utils.timezone import get_current_timezone, make_aware
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.dsutils import decode, encode
from pynetdicom.sop_class import ModalityWorklistInformationFind

from imaging.dicom.records.datasets import worklist_response
from imaging.models import ImagingOrder, Procedure
from tests.conftest import tool_required
from vetclinic import clock

FINDSCU = "/usr/bin/findscu"  # .venv/bin has pynetdicom's findscu under the same name


def today(hh, mm=0):
    now = clock.localnow()  # the clinic's clock, pinned for every test (conftest.py)
    return make_aware(datetime.combine(now.date(), datetime.min.time()), get_current_timezone()) + timedelta(
        hours=hh, minutes=mm
    )


@pytest.fixture
def orders(reference_data, make_owner, make_patient, make_order, labrador, actor):
    """A non-ASCII owner and animal with a coded breed and a chip; an organisation's animal
    with a free-text breed; a plain one with no owner and a long reason."""
    from patients.services import weight_record

    zoe = make_patient("Zoë", owner=make_owner("Müller", given_name="Jürgen"), breed=labrador,
                       microchip="985141000123456", sex="F", neutered="ALTERED")  # fmt: skip
    weight_record(actor=actor, patient=zoe, kg="31.2")
    rex = make_patient("Rex", owner=make_owner("", kind="organisation", organisation_name="Greenfield Kennels"),
                       breed_text="Collie cross")  # fmt: skip
    return {
        "Zoë": make_order(
            zoe,
            "DX-THX2",
            today(9),
            referring_vet="Okafor^Ada",
            performing_vet="Lee^Sam",
            reason="Husten seit zwei Wochen",
        ),  # fmt: skip
        "Rex": make_order(rex, "DX-HIPS", today(10), weight_kg="24.5"),
        "Stray": make_order(make_patient("Stray"), "DX-STIF", today(11), reason="R" * 9000),
    }


# Top-level keys and whole sequences, the step's own keys, keys we have no value for, and a
# sequence key with an item (its keys picked in each of ours).
KEYS = [
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "PatientWeight",
    "PatientSpeciesDescription", "PatientSpeciesCodeSequence", "PatientBreedDescription", "PatientBreedCodeSequence",
    "PatientSexNeutered", "ResponsiblePerson", "ResponsiblePersonRole", "ResponsibleOrganization",
    "OtherPatientIDsSequence", "MedicalAlerts", "PatientComments", "AccessionNumber", "ReferringPhysicianName",
    "StudyInstanceUID", "RequestedProcedureID", "RequestedProcedureDescription", "RequestedProcedurePriority",
    "ReasonForTheRequestedProcedure", "BodyPartExamined", "ReferencedStudySequence",
    "RequestedProcedureCodeSequence[0].CodeValue", "RequestedProcedureCodeSequence[0].CodeMeaning",
    "ScheduledProcedureStepSequence[0].Modality=DX",
    "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus",
    "ScheduledProcedureStepSequence[0].ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepSequence[0].CommentsOnTheScheduledProcedureStep",
    "ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence",
    "ScheduledProcedureStepSequence[0].PreMedication",
]  # fmt: skip


def query(keys):
    """The identifier findscu sends for ``-k`` keys (Key, Key=value, Seq[0].Key[=value])."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    ds = Dataset()
    for key in keys:
        path, _, value = key.partition("=")
        target = ds
        *sequences, keyword = path.split(".")
        for sequence in sequences:
            name = sequence.split("[")[0]
            if name not in target or not target[name].value:
                setattr(target, name, [Dataset()])
            target = target[name].value[0]
        tag = tag_for_keyword(keyword)
        if dictionary_VR(tag) == "SQ":
            setattr(target, keyword, [])
        else:
            target.add_new(tag, dictionary_VR(tag), value or None)
    return ds


def expected(order, identifier=None):
    """worklist_response's data set as pydicom writes and reads it back (an empty value then
    reads as '' rather than None, as it does from the wire)."""
    response = worklist_response(identifier or query(KEYS), ImagingOrder.objects.get(pk=order.pk))
    return decode(BytesIO(encode(response, False, True)), False, True)


def findscu(listener, tmp_path, *options):
    tool_required(FINDSCU)
    out = tmp_path / f"rsp-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    args = [
        FINDSCU,
        "-W",
        "-X",
        "-od",
        str(out),
        *options,
        "-aet",
        "DRROOM",
        "-aec",
        "VETPACS",
        "127.0.0.1",
        str(listener.port),
    ]
    for key in KEYS:
        args += ["-k", key]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return [dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]


def differences(answer, wanted):
    """Where two data sets differ, element by element (their repr where they do)."""
    tags = sorted(set(answer.keys()) | set(wanted.keys()))
    return [(tag, answer.get(tag), wanted.get(tag)) for tag in tags if answer.get(tag) != wanted.get(tag)]


def by_accession(answers):
    return {str(answer.AccessionNumber): answer for answer in answers}


@pytest.mark.parametrize(
    "options", [[], ["-xi"], ["-pdu", "4096"]], ids=["explicit VR", "implicit VR", "4 KiB PDUs"]
)
def test_findscu_gets_exactly_what_worklist_response_defines(orders, dicom_listener, tmp_path, options):
    answers = by_accession(findscu(dicom_listener, tmp_path, *options))
    assert sorted(answers) == sorted(order.accession_number for order in orders.values())
    for name, order in orders.items():
        answer, wanted = answers[order.accession_number], expected(order)
        assert differences(answer, wanted) == [], name  # every element, sequences included, nothing else
    zoe = answers[orders["Zoë"].accession_number]
    assert zoe.SpecificCharacterSet == "ISO_IR 192" and str(zoe.PatientName) == "Müller^Zoë"
    assert str(zoe.ResponsiblePerson) == "Müller^Jürgen" and zoe.PatientWeight == "31.2"
    assert "SpecificCharacterSet" not in answers[orders["Rex"].accession_number]
    stray = answers[orders["Stray"].accession_number]
    assert stray.ScheduledProcedureStepSequence[0].CommentsOnTheScheduledProcedureStep == "R" * 9000


def associate(listener, transfer_syntax=None, max_pdu=16382, handlers=()):
    ae = AE(ae_title="DRROOM")
    if transfer_syntax:
        ae.add_requested_context(ModalityWorklistInformationFind, [transfer_syntax])
    else:
        ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate(
        "127.0.0.1", listener.port, ae_title="VETPACS", max_pdu=max_pdu, evt_handlers=list(handlers)
    )
    assert assoc.is_established
    return assoc


def answers_of(assoc, identifier, msg_id=1):
    found, final = [], None
    for status, answer in assoc.send_c_find(identifier, ModalityWorklistInformationFind, msg_id=msg_id):
        if status.Status in (0xFF00, 0xFF01):
            found.append(answer)
        else:
            final = status.Status
    return found, final


@pytest.mark.parametrize(
    "transfer_syntax", [ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian], ids=["big endian", "deflated"]
)
def test_the_transfer_syntaxes_pydicom_encodes_for_us(orders, dicom_listener, transfer_syntax):
    assoc = associate(dicom_listener, transfer_syntax)
    found, final = answers_of(assoc, query(KEYS))
    assoc.release()
    assert final == 0x0000
    answers = by_accession(found)
    assert sorted(answers) == sorted(order.accession_number for order in orders.values())
    for name, order in orders.items():
        assert differences(answers[order.accession_number], expected(order)) == [], name


def test_an_answer_longer_than_the_callers_pdus_comes_in_pieces_that_fit(orders, dicom_listener):
    sizes = []

    def pdu_received(event):
        if type(event.pdu).__name__ == "P_DATA_TF":
            # The variable field: each PDV item's length, context ID and value (PS3.8 9.3.5.1)
            sizes.append(
                sum(5 + len(item.presentation_data_value) for item in event.pdu.presentation_data_value_items)
            )

    assoc = associate(dicom_listener, max_pdu=1024, handlers=[(evt.EVT_PDU_RECV, pdu_received)])
    identifier = query(KEYS)
    identifier.AccessionNumber = orders["Stray"].accession_number
    found, final = answers_of(assoc, identifier)
    assoc.release()
    assert final == 0x0000 and len(found) == 1
    assert differences(found[0], expected(orders["Stray"], identifier)) == []
    assert len(sizes) >= 9 and max(sizes) <= 1024  # the 9,000-character comment in ~1 KiB PDUs


def busy_day(make_patient, stations, count):
    """``count`` orders today for one animal on the DX station: a result long enough to cancel."""
    patient = make_patient("Busy")
    procedure = Procedure.objects.get(code="DX-THX2")
    ImagingOrder.objects.bulk_create(
        ImagingOrder(patient=patient, procedure=procedure, station=stations["DX"], modality_type="DX",
                     scheduled_start=today(8, i % 600), duration_minutes=15, accession_number=f"T{i}",
                     study_instance_uid=generate_uid())
        for i in range(count)
    )  # fmt: skip


def test_a_c_cancel_stops_the_answers_and_the_next_query_is_answered_in_full(
    reference_data, make_patient, stations, dicom_listener
):
    busy_day(make_patient, stations, 1500)
    assoc = associate(dicom_listener)
    everything = query(["PatientName", "AccessionNumber", "ScheduledProcedureStepSequence"])
    pending, final = 0, None
    for status, _ in assoc.send_c_find(everything, ModalityWorklistInformationFind, msg_id=7):
        if status.Status in (0xFF00, 0xFF01):
            pending += 1
            if pending == 1:
                assoc.send_c_cancel(7, query_model=ModalityWorklistInformationFind)
        else:
            final = status.Status
    assert final == 0xFE00 and 1 <= pending < 1500  # Matching terminated due to Cancel (K.4.1.2.3)
    found, final = answers_of(assoc, query(["AccessionNumber=T1*", "PatientName"]), msg_id=8)
    assoc.release()
    assert final == 0x0000
    assert sorted(str(ds.AccessionNumber) for ds in found) == sorted(
        f"T{i}" for i in range(1500) if str(i).startswith("1")
    )
