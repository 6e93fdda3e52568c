"""A consult's answer coming back by HL7 ORU^R01 (over MLLP to the real listener) or as a DICOM
SR, filed on the study as the consult report through the one service the share link uses
(sharing.services.consult_report_file): the consult reported, the badge, the webhook row; a bad
answer refused with an ERR and nothing filed; a repeat filed once; a correction amends."""

import pytest
from django.test import Client as WebClient
from django.urls import reverse

from imaging.models import Modality, Study
from integrations.api.clients import api_client_create
from integrations.models import WebhookDelivery, WebhookSubscription
from sending.models import Destination, Send
from sharing import services
from sharing.models import ConsultReport, ConsultRequest
from tests.test_dicomweb_wado import ingest  # noqa: F401  (fixture)
from tests.test_hl7_listener import Client, hl7_listener, hl7_listener_start  # noqa: F401  (fixtures)
from tests.test_sharing import cache_cleared, studies  # noqa: F401  (fixtures)
from vetclinic.audit.services import Actor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def telerad(db):
    """A teleradiology service registered as a sending destination (its DICOM node)."""
    node = Modality.objects.create(ae_title="TELERAD", host="127.0.0.1", port=11199, modality_type="OT",
                                   may_store=False, may_query=False)  # fmt: skip
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


@pytest.mark.parametrize(
    "change, err, words",
    [
        ({"placer": "CONSULT-999999"}, ["ORC", "1", "2"], "no consult with placer number CONSULT-999999"),
        ({"placer": "", "accession": "NOT-OURS"}, ["OBR", "1", "18"], "no open consult"),
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
