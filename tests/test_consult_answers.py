"""A consult's answer coming back by HL7 ORU^R01 (over MLLP to the real listener) or as a DICOM
SR, filed on the study as the consult report through the one service the share link uses
(sharing.services.consult_report_file): the consult reported, the badge, the webhook row; a bad
answer refused with an ERR and nothing filed; a repeat filed once; a correction amends."""

import io
import subprocess

import highdicom as hd
import pydicom
import pytest
from django.test import Client as WebClient
from django.urls import reverse
from django.utils import timezone
from pydicom import Dataset
from pydicom.uid import generate_uid

from imaging.annotations.services import annotation_save
from imaging.annotations.sr import annotations_export
from imaging.ingest import storage
from imaging.ingest.index import instance_index
from imaging.ingest.tasks import instances_ingest
from imaging.models import Instance, Modality, Study
from integrations.api.clients import api_client_create
from integrations.models import WebhookDelivery, WebhookSubscription
from sending.models import Destination, Send
from sharing import services
from sharing.answers import sr_answers_file
from sharing.models import ConsultReport, ConsultRequest
from tests.conftest import tool_required, wait_for
from tests.test_annotations import image_id, mark
from tests.test_dicomweb_wado import (
    Collected,
    ingest,  # noqa: F401  (fixture)
)
from tests.test_hl7_listener import Client, hl7_listener, hl7_listener_start  # noqa: F401  (fixtures)
from tests.test_sharing import cache_cleared, studies  # noqa: F401  (fixtures)
from vetclinic.audit.services import Actor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def telerad(db):
    """A teleradiology service registered as a sending destination (its DICOM node)."""
    # It may store: its answer can come back as a DICOM SR from this node.
    node = Modality.objects.create(ae_title="TELERAD", host="127.0.0.1", port=11199, modality_type="OT",
                                   may_query=False)  # fmt: skip
    return Destination.objects.create(name="VetReads teleradiology", kind=Destination.Kind.DICOM, node=node)


def oru(control_id, *, placer="", accession="", lines=("Impression: no nodules.",), status="F",
        value_type="TX", interpreter="&Reyes&Ana", observer=""):  # fmt: skip
    """An ORU^R01 as a reading service sends it (HL7 2.5.1 7.3.1)."""
    obr = ["OBR", "1", placer, "TR-88^VETREADS", "RAD^Radiograph review"] + [""] * 13 + [accession]
    obr += [""] * (32 - len(obr)) + [interpreter]
    segments = [
        f"MSH|^~\\&|VETREADS|TELERAD|VETPACS|CLINIC|20261123120000||ORU^R01^ORU_R01|{control_id}|P|2.5.1",
        "PID|1||P123^^^CLINIC||Hartley^Biscuit",
        f"ORC|RE|{placer}|TR-88^VETREADS",
        "|".join(obr),
    ]
    for n, line in enumerate(lines, 1):
        segments.append(f"OBX|{n}|{value_type}|IMP^Impression||{line}||||||{status}|||||{observer}")
    return "\r".join(segments) + "\r"


def _consult(shared, prior, staff, telerad):
    return services.consult_create(
        actor=Actor.for_user(staff["veterinarian"]), study=shared, destination="", sent_to=telerad,
        clinical_question="Pulmonary nodules?", priors=[prior],
    )[0]  # fmt: skip


def test_an_oru_files_the_consult_report_once_and_a_correction_amends_it(
    studies, staff, telerad, hl7_listener
):  # noqa: F811
    shared, prior, _ = studies
    client, _ = api_client_create(actor=Actor.system("tests"), name="PMS", scopes=["studies:read"])
    WebhookSubscription.objects.create(client=client, url="https://pms.invalid/hook", secret="s" * 32,
                                       events=["consult.reported"])  # fmt: skip
    consult = _consult(shared, prior, staff, telerad)
    # Sent to the service with its prior, through study_send; the consult names the service.
    assert (consult.destination, consult.sent_to, consult.placer_number) == (
        "VetReads teleradiology", telerad, f"CONSULT-{consult.pk}")  # fmt: skip
    assert sorted(consult.sends.values_list("study_id", "destination_id")) == sorted(
        [(shared.pk, telerad.pk), (prior.pk, telerad.pk)])  # fmt: skip
    assert Send.objects.count() == 2

    hl7 = Client(hl7_listener.port)
    message = oru("R1", placer=consult.placer_number,
                  lines=("Thorax, 2 views.", "No pulmonary nodules\\F\\masses."))  # fmt: skip
    hl7.send(message)
    first = hl7.ack()
    assert first["MSA"][1:3] == ["AA", "R1"], first
    report = ConsultReport.objects.get()
    assert (report.study_id, report.consult_id, report.author_name, report.source, report.status) == (
        shared.pk, consult.pk, "Ana Reyes", "hl7", "final")  # fmt: skip
    assert report.text == "Thorax, 2 views.\nNo pulmonary nodules|masses."
    consult.refresh_from_db()
    assert consult.status == "reported" and consult.reported_at is not None
    assert [d.event for d in WebhookDelivery.objects.all()] == ["consult.reported"]

    hl7.send(message)  # the same message again: the first ACK, nothing filed twice
    assert hl7.ack() == first
    assert ConsultReport.objects.count() == 1

    # A correction (OBX-11 C) quoting the accession only (OBR-18): a new report that amends.
    Study.objects.filter(pk=shared.pk).update(accession_number="VP00000042")
    hl7.send(oru("R2", accession="VP00000042", lines=("Small nodule, right caudal lobe.",), status="C",
                 interpreter="", observer="^Okafor^Dele"))  # fmt: skip
    assert hl7.ack()["MSA"][1] == "AA"
    correction = ConsultReport.objects.order_by("pk").last()
    assert (correction.status, correction.amends, correction.author_name, correction.consult_id) == (
        "corrected", report, "Dele Okafor", consult.pk)  # fmt: skip
    assert [d.event for d in WebhookDelivery.objects.all()] == ["consult.reported", "consult.reported"]

    # The requesting vet: the badge on the study page, the corrected report marked as such.
    vet = WebClient()
    vet.force_login(staff["veterinarian"])
    page = vet.get(reverse("study_detail", args=[shared.pk])).content.decode()
    assert "2 new consult reports" in page and "Small nodule, right caudal lobe." in page
    assert "amends" in page and consult.placer_number in page and "VetReads teleradiology" in page


def test_an_oru_with_another_placer_number_is_matched_by_its_accession(studies, staff, telerad, hl7_listener):  # noqa: F811
    shared, prior, _ = studies
    consult = _consult(shared, prior, staff, telerad)
    Study.objects.filter(pk=shared.pk).update(accession_number="VP00000043")
    hl7 = Client(hl7_listener.port)
    hl7.send(oru("P1", placer="PMS-77", accession="VP00000043", value_type="FT",
                 lines=("Thorax\\.br\\No effusion.",), status="P"))  # fmt: skip
    assert hl7.ack()["MSA"][1:3] == ["AA", "P1"]
    report = ConsultReport.objects.get()
    assert (report.consult_id, report.status, report.text) == (
        consult.pk,
        "preliminary",
        "Thorax\nNo effusion.",
    )
    assert ConsultRequest.objects.get().status == "received"  # preliminary: being read, not reported


@pytest.mark.parametrize("encoding", ["^~\\&", "^~#&"])
def test_an_ft_observation_keeps_its_line_breaks_and_drops_its_layout_commands(encoding):
    """HL7 2.7.6: .br is a line break; .sp, .in, .ti... only lay the text out. The escape
    character is the message's own (MSH-2), "#" here as well as the usual "\\"."""
    from integrations.hl7.inbound_results import _lines
    from integrations.hl7.messages import header_read, message_segments

    e = encoding[2]
    text = (f"MSH|{encoding}|VETREADS|TELERAD|VETPACS|CLINIC|20261123120000||ORU^R01|1|P|2.5.1\r"
            f"OBX|1|FT|IMP^Impression||{e}.in+4{e}Thorax{e}.br{e}{e}.sp2{e}No effusion; 5{e}.ti-2{e} mm"
            f"~Heart normal{e}.br{e}A {e}F{e} B||||||F\r")  # fmt: skip
    header = header_read(text)
    obx = message_segments(text, header)[1]
    assert _lines(obx) == ["Thorax", "No effusion; 5 mm", "Heart normal", "A | B"]


@pytest.mark.parametrize(
    "change, err, words",
    [
        ({"placer": "CONSULT-999999"}, ["ORC", "1", "2"], "no consult with placer number CONSULT-999999"),
        ({"placer": "", "accession": "NOT-OURS"}, ["OBR", "1", "18"], "no open consult"),
        ({"placer": "PMS-77", "accession": "NOT-OURS"}, ["OBR", "1", "18"], "no open consult"),
        ({"placer": "PMS-77"}, ["ORC", "1", "2"], "no consult with placer number PMS-77"),
        ({"placer": "", "accession": ""}, ["OBR", "1", "2"], "which consult?"),
        ({"value_type": "NM", "lines": ("12.5",)}, ["OBX", "1", "5"], "No OBX with a text value"),
        ({"lines": ("",)}, ["OBX", "1", "5"], "OBX-5 is empty"),
        ({"status": "X"}, ["OBX", "1", "11"], "not a result status"),
    ],
)
def test_a_bad_oru_gets_ae_with_an_err_naming_the_field_and_files_nothing(
    studies,
    staff,
    telerad,
    hl7_listener,
    change,
    err,
    words,  # noqa: F811
):
    shared, prior, _ = studies
    consult = _consult(shared, prior, staff, telerad)
    hl7 = Client(hl7_listener.port)
    hl7.send(oru("BAD1", **{"placer": consult.placer_number, **change}))
    ack = hl7.ack()
    assert ack["MSA"][1:3] == ["AE", "BAD1"], ack
    assert ack["ERR"][2].split("^") == err and words in ack["ERR"][8], ack["ERR"]
    assert not ConsultReport.objects.exists()
    assert ConsultRequest.objects.get().status == "sent"


# DICOM SR --------------------------------------------------------------------------------------

CODE = hd.sr.CodedConcept


def text_sr(evidence, *, document=hd.sr.EnhancedSR, placer="", complete=True, impression="Normal thorax.",
            previous=None):  # fmt: skip
    """A reading service's report as a text SR (highdicom): a Findings section with a TEXT item,
    an Impression; the verifying radiologist; ``placer`` quoted in the Referenced Request
    Sequence; ``previous``, the documents it corrects, in its Predecessor Documents Sequence."""
    finding = hd.sr.TextContentItem(name=CODE("121071", "DCM", "Finding"), value="No pulmonary nodules.",
                                    relationship_type="CONTAINS")  # fmt: skip
    findings = hd.sr.ContainerContentItem(
        name=CODE("121070", "DCM", "Findings"), relationship_type="CONTAINS"
    )
    findings.ContentSequence = hd.sr.ContentSequence([finding])
    impression = hd.sr.TextContentItem(name=CODE("121073", "DCM", "Impression"), value=impression,
                                       relationship_type="CONTAINS")  # fmt: skip
    root = hd.sr.ContainerContentItem(name=CODE("18748-4", "LN", "Diagnostic imaging report"))
    root.ContentSequence = hd.sr.ContentSequence([findings, impression])
    requests = []
    if placer:
        request = Dataset()
        request.StudyInstanceUID = evidence.StudyInstanceUID
        request.AccessionNumber = request.FillerOrderNumberImagingServiceRequest = ""
        request.RequestedProcedureID = request.RequestedProcedureDescription = ""
        request.PlacerOrderNumberImagingServiceRequest = placer
        request.RequestedProcedureCodeSequence = request.ReferencedStudySequence = []
        requests.append(request)
    return document(
        evidence=[evidence], content=root, series_instance_uid=generate_uid(), series_number=90,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="VetReads", is_complete=complete,
        is_verified=True, verifying_observer_name="Reyes^Ana", verifying_organization="VetReads",
        requested_procedures=requests or None, previous_versions=previous,
    )  # fmt: skip


def stored_image(study):
    instance = Instance.objects.filter(series__study=study).order_by("pk").first()
    return pydicom.dcmread(io.BytesIO(storage.object_get(instance.storage_key)))


def storescu_from_telerad(dicom_listener, sr, path):
    """The SR written to ``path`` as a DICOM file and sent by dcmtk's storescu as TELERAD."""
    sr.save_as(path, enforce_file_format=True)
    done = subprocess.run([tool_required("/usr/bin/storescu"), "-aet", "TELERAD", "-aec", "VETPACS",
                           "127.0.0.1", str(dicom_listener.port), str(path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr


SR_TEXT = "Findings\nFinding: No pulmonary nodules.\nImpression: Normal thorax."


def test_an_sr_from_the_consults_service_sent_by_storescu_is_filed_once(
    studies,
    staff,
    telerad,
    dicom_listener,
    celery_worker,
    tmp_path,  # noqa: F811
):
    shared, prior, _ = studies
    consult = _consult(shared, prior, staff, telerad)
    sr = text_sr(stored_image(shared))  # no placer number: known by the node it came from
    storescu_from_telerad(dicom_listener, sr, tmp_path / "report.dcm")
    wait_for(lambda: ConsultReport.objects.exists(), timeout=60, message="the SR filed as the consult report")
    report = ConsultReport.objects.get()
    assert (report.consult_id, report.study_id, report.source, report.source_id, report.status) == (
        consult.pk, shared.pk, "sr", sr.SOPInstanceUID, "final")  # fmt: skip
    assert (report.author_name, report.text) == ("Ana Reyes", SR_TEXT)
    consult.refresh_from_db()
    assert consult.status == "reported"
    # Indexed again (the sweep, manage.py reindex), and asked again: still one report.
    instance = Instance.objects.get(sop_instance_uid=sr.SOPInstanceUID)
    assert instance.received_from == "TELERAD"
    instance_index(storage_key=instance.storage_key, received_from="TELERAD")
    assert sr_answers_file([instance.pk]) == []
    assert ConsultReport.objects.count() == 1


def test_a_corrected_sr_naming_the_first_as_its_predecessor_amends_its_report(
    studies,
    staff,
    telerad,
    dicom_listener,
    celery_worker,
    tmp_path,  # noqa: F811
):
    shared, prior, _ = studies
    consult = _consult(shared, prior, staff, telerad)
    first = text_sr(stored_image(shared))
    storescu_from_telerad(dicom_listener, first, tmp_path / "first.dcm")
    wait_for(lambda: ConsultReport.objects.exists(), timeout=60, message="the first SR filed")
    assert ConsultRequest.objects.get().status == "reported"
    # The service corrects its report: a new document (its own SOP Instance UID) that names the
    # first in its Predecessor Documents Sequence (0040,A360). The consult is reported already.
    corrected = text_sr(
        stored_image(shared), impression="A 4 mm nodule, right caudal lobe.", previous=[first]
    )
    assert corrected.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0] \
        .ReferencedSOPInstanceUID == first.SOPInstanceUID  # fmt: skip
    storescu_from_telerad(dicom_listener, corrected, tmp_path / "corrected.dcm")
    wait_for(lambda: ConsultReport.objects.count() == 2, timeout=60, message="the corrected SR filed")
    original = ConsultReport.objects.get(source_id=first.SOPInstanceUID)
    amendment = ConsultReport.objects.get(source_id=corrected.SOPInstanceUID)
    assert amendment.amends == original and original.amends is None
    assert (amendment.consult_id, amendment.study_id, amendment.source, amendment.status) == (
        consult.pk, shared.pk, "sr", "corrected")  # fmt: skip
    assert amendment.text.endswith("Impression: A 4 mm nodule, right caudal lobe.")
    assert ConsultRequest.objects.get().status == "reported"
    # The study page says so (the badge of sharing/_study_sharing.html).
    web = WebClient()
    web.force_login(staff["veterinarian"])
    page = web.get(reverse("study_detail", args=[shared.pk])).content.decode()
    assert f"amends the report of {timezone.localtime(original.created_at):%Y-%m-%d %H:%M}" in page


def test_a_complete_sr_naming_a_preliminary_one_amends_it_as_final_and_one_naming_nothing_filed_is_new(
    studies,
    staff,
    telerad,
    ingest,  # noqa: F811
):
    shared, prior, _ = studies
    consult = _consult(shared, prior, staff, telerad)
    image = stored_image(shared)
    draft = text_sr(image, placer=consult.placer_number, complete=False)
    ingest((draft, {}))
    assert ConsultRequest.objects.get().status == "received"
    # Completed: it takes in the preliminary one (PS3.3 C.17.2.3) and is the final report.
    done = text_sr(image, placer=consult.placer_number, impression="A 4 mm nodule.", previous=[draft])
    ingest((done, {}))
    first, final = (
        ConsultReport.objects.get(source_id=draft.SOPInstanceUID),
        ConsultReport.objects.get(source_id=done.SOPInstanceUID),
    )
    assert (final.amends, final.status, first.status) == (first, "final", "preliminary")
    assert ConsultRequest.objects.get().status == "reported"
    # A predecessor that was never filed here (another system's document) amends nothing, and
    # the consult is reported: not an answer to anything open, so nothing is filed.
    stranger = text_sr(image, placer=consult.placer_number, previous=[text_sr(image)])
    ingest((stranger, {}))
    assert ConsultReport.objects.count() == 2


def test_the_sr_author_is_the_author_else_the_verifier_else_the_attestor_else_the_observer_else_the_sender():
    from sharing.answers import sr_author

    def item(**attributes):
        found = Dataset()
        for keyword, value in attributes.items():
            setattr(found, keyword, value)
        return found

    ds = Dataset()
    assert sr_author(ds, "TELERAD") == "TELERAD"
    observer = item(ValueType="PNAME", PersonName="Lee^Sam",
                    ConceptNameCodeSequence=[item(CodeValue="121008", CodingSchemeDesignator="DCM")])  # fmt: skip
    ds.ContentSequence = [observer]
    assert sr_author(ds, "TELERAD") == "Sam Lee"
    # Who typed it (ENT) is not who wrote it; who attested it (ATTEST) is.
    ds.ParticipantSequence = [item(ParticipationType="ENT", PersonName="Typist^Tom")]
    assert sr_author(ds, "TELERAD") == "Sam Lee"
    ds.ParticipantSequence.append(item(ParticipationType="ATTEST", PersonName="Okafor^Ada"))
    assert sr_author(ds, "TELERAD") == "Ada Okafor"
    ds.VerifyingObserverSequence = [item(VerifyingObserverName="Reyes^Ana")]
    assert sr_author(ds, "TELERAD") == "Ana Reyes"
    ds.AuthorObserverSequence = [item(ObserverType="DEV"), item(ObserverType="PSN", PersonName="Moss^Kit")]
    assert sr_author(ds, "TELERAD") == "Kit Moss"  # (a device author has no name: the person after it)


def test_an_sr_quoting_the_placer_number_is_filed_and_vetpacs_own_measurement_sr_is_not(
    studies,
    staff,
    telerad,
    ingest,
    make_patient,  # noqa: F811
):
    shared, prior, _ = studies
    consult = _consult(shared, prior, staff, telerad)
    image = stored_image(shared)
    # The clinic's own measurements, exported into the study as a TID 1500 SR: not an answer.
    sop = str(image.SOPInstanceUID)
    series_uid = str(image.SeriesInstanceUID)
    vet = Actor.for_user(staff["veterinarian"])
    annotation_save(
        actor=vet, study=shared, version=0,
        key_images=[{"seriesUid": series_uid, "sopInstanceUid": sop, "frame": 1,
                     "imageId": image_id(shared, series_uid, sop)}],
        annotations=[mark(shared, series_uid, sop, value=42.5, unit="mm", text="Length 42.5 mm")],
    )  # fmt: skip
    batch = Collected()
    annotations_export(actor=vet, study=shared, batch=batch)
    instances_ingest(batch.messages)
    assert Instance.objects.filter(series__study=shared).count() == 4  # two slices, the SR, the KO
    # Nor is a TID 1500 measurement report in a Comprehensive SR from another viewer.
    measurements = text_sr(image, document=hd.sr.ComprehensiveSR, placer=consult.placer_number)
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = "DCMR", "1500"
    measurements.ContentTemplateSequence = [template]
    ingest((measurements, {}))
    assert not ConsultReport.objects.exists()
    assert ConsultRequest.objects.get().status == "sent"
    # A Comprehensive SR from an unregistered sender (the ingest's calling AE is CTROOM), quoting
    # the placer number in its Referenced Request Sequence, marked PARTIAL: a preliminary report.
    answer = text_sr(image, document=hd.sr.ComprehensiveSR, placer=consult.placer_number, complete=False)
    ingest((answer, {}))
    report = ConsultReport.objects.get()
    assert (report.consult_id, report.source, report.status, report.text) == (
        consult.pk, "sr", "preliminary", SR_TEXT)  # fmt: skip
    assert ConsultRequest.objects.get().status == "received"  # preliminary: not reported yet


def test_a_consult_sent_to_a_destination_over_rest_and_in_the_ui(studies, staff, telerad):  # noqa: F811
    shared, prior, _ = studies
    _, key = api_client_create(
        actor=Actor.system("tests"), name="PMS", scopes=["studies:read", "studies:write"]
    )
    api = WebClient(HTTP_AUTHORIZATION=f"Bearer {key}")
    url = f"/api/v1/studies/{shared.pk}/consults"
    asked = api.post(url, {"sent_to": telerad.name, "clinical_question": "Effusion?", "priors": [prior.pk]},
                     content_type="application/json")  # fmt: skip
    assert asked.status_code == 201, asked.content
    body = asked.json()
    assert (body["sent_to"], body["destination"], body["placer_number"]) == (
        telerad.name, telerad.name, f"CONSULT-{body['id']}")  # fmt: skip
    assert sorted(Send.objects.values_list("study_id", flat=True)) == sorted([shared.pk, prior.pk])
    unknown = api.post(url, {"sent_to": "Nobody", "clinical_question": "?"}, content_type="application/json")
    assert unknown.status_code == 400 and "sent_to" in unknown.json()["error"]["fields"]
    nobody = api.post(url, {"clinical_question": "?"}, content_type="application/json")
    assert nobody.status_code == 400 and "destination" in nobody.json()["error"]["fields"]
    # The study page's form: the destination chosen from the registered ones.
    vet = WebClient()
    vet.force_login(staff["veterinarian"])
    page = vet.get(reverse("study_detail", args=[shared.pk])).content.decode()
    assert f'<option value="{telerad.pk}">{telerad.name}</option>' in page and body["placer_number"] in page
    made = vet.post(reverse("consult_create", args=[shared.pk]),
                    {"destination": "", "sent_to": str(telerad.pk), "clinical_question": "Again?"})  # fmt: skip
    assert made.status_code == 200
    assert ConsultRequest.objects.filter(sent_to=telerad).count() == 2 and Send.objects.count() == 3
    refused = vet.post(reverse("consult_create", args=[shared.pk]),
                       {"destination": "X", "sent_to": "999999", "clinical_question": "?"})  # fmt: skip
    assert refused.status_code == 302 and ConsultRequest.objects.count() == 2
