"""A vet signs a report on the study page; a real Celery worker tells the PMS both ways: an
ORU^R01 to its MLLP receiver and a signed report.finalized webhook to its HTTP receiver."""

from datetime import date

import pytest
from django.urls import reverse

from imaging.models import Study
from integrations.models import HL7Endpoint, HL7Message, WebhookDelivery
from integrations.webhooks import services as webhooks
from tests.conftest import free_port, wait_for
from tests.test_hl7_outbound import Receiver as MLLPReceiver
from tests.test_webhooks import SECRET
from tests.test_webhooks import Receiver as HTTPReceiver


@pytest.fixture(autouse=True)
def receivers_allowed(process_env, settings):
    """The PMS's HTTP receiver listens on 127.0.0.1: an admin lists it for webhooks."""
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    process_env["WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"


def test_signing_a_report_reaches_the_pms_by_hl7_and_webhook(
    process_env, reference_data, make_owner, make_patient, make_order, actor, staff, client, celery_worker
):
    from integrations.api.clients import api_client_create

    order = make_order(make_patient("Rex", owner=make_owner("Okafor")), placer_order_number="ORD-9")
    study = Study.objects.create(study_instance_uid=order.study_instance_uid, patient=order.patient, order=order,
                                 link=Study.Link.ORDER, accession_number=order.accession_number,
                                 study_date=date(2026, 11, 23))  # fmt: skip
    port = free_port()
    mllp = MLLPReceiver(port)
    HL7Endpoint.objects.create(name="PMS", host="127.0.0.1", port=port, receiving_application="VETPMS",
                               events=["report_final"])  # fmt: skip
    http = HTTPReceiver()
    pms, _ = api_client_create(actor=actor, name="Acme PMS", scopes=["webhooks:write", "reports:read"])
    webhooks.subscription_create(
        actor=actor, client=pms, url=http.url, events=["report.finalized"], secret=SECRET
    )
    try:
        client.force_login(staff["veterinarian"])
        response = client.post(reverse("study_report", args=[study.pk]), {
            "findings": "Normal thorax.", "conclusion": "No abnormality.", "action": "finalize", "loaded": "none",
        })  # fmt: skip
        assert response.status_code == 302
        wait_for(lambda: HL7Message.objects.filter(direction="out", status="sent").exists()
                 and WebhookDelivery.objects.filter(status="delivered").exists(),
                 timeout=60, message="the ORU^R01 and the webhook")  # fmt: skip
    finally:
        mllp.close()
        http.close()
    [oru] = mllp.received
    assert (
        "|ORU^R01" in oru
        and "|RE|ORD-9|" in oru
        and "OBX|1|TX|59776-5^Procedure findings^LN|1|Normal thorax.|" in oru
    )
    [hook] = http.received
    assert hook.verified is True and hook.json["event"] == "report.finalized"
    assert (
        hook.json["data"]["report"]["status"] == "final"
        and hook.json["data"]["order"]["status"] == "reported"
    )
