"""The study page's Sending card in headless Chromium: a vet sends the study, the progress
updates by itself as the send runs, and a send that finally fails shows its badge and reason."""

import pytest
from django.urls import reverse
from pydicom.uid import generate_uid

from imaging.models import Modality, Study
from sending.models import Destination, Send
from sending.services import send_run
from tests.conftest import free_port
from tests.test_browser_orders import NARROW, SCREENSHOTS, browser, log_in, page  # noqa: F401  (fixtures)
from tests.test_dicomweb_wado import ingest, uids  # noqa: F401  (fixture)
from tests.test_sending import storescp_start  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def destination(name, ae, port):
    node = Modality.objects.create(ae_title=ae, host="127.0.0.1", port=port, modality_type="OT")
    return Destination.objects.create(name=name, node=node)


def test_send_from_the_study_page_with_live_progress_and_a_failure_badge(
    reference_data,
    staff,
    ingest,
    storescp_start,
    live_server,
    page,
    settings,  # noqa: F811
):
    settings.SEND_ATTEMPTS = 1
    study_uid = generate_uid()
    ingest(("CT_small.dcm", uids(study_uid)), ("CT_small.dcm", uids(study_uid)))
    study = Study.objects.get(study_instance_uid=study_uid)
    peer = storescp_start("+B", "+xa")
    destination("Specialist", "PEER", peer.port)
    destination("Old teleradiology", "GONE", free_port())  # nobody listens there
    log_in(page, live_server, "veterinarian")
    page.goto(live_server.url + reverse("study_detail", args=[study.pk]))
    page.select_option("#sending select[name=destination]", label="Specialist")
    page.click("#sending button[type=submit]")
    page.wait_for_selector("#sending tr[data-state=queued]")
    send = Send.objects.get()
    assert send_run(send.pk) == Send.State.DONE  # as the worker would
    page.wait_for_selector("#sending tr[data-state=done]")  # the card polled and shows it sent
    assert page.inner_text("#sending tr[data-state=done] .send-count") == "2/2"
    page.select_option("#sending select[name=destination]", label="Old teleradiology")
    page.click("#sending button[type=submit]")
    page.wait_for_selector("#sending tr[data-state=queued]")
    failed = Send.objects.exclude(pk=send.pk).get()
    assert send_run(failed.pk) == Send.State.FAILED
    page.wait_for_selector("#sending .badge-send-failed")
    assert page.inner_text("#sending .badge-send-failed") == "1 send failed"
    assert "Sending to Old teleradiology failed: GONE at 127.0.0.1" in page.inner_text("#sending .send-alert")
    page.screenshot(path=str(SCREENSHOTS / "sending-study-card.png"), full_page=True)
    page.set_viewport_size(NARROW)
    page.screenshot(path=str(SCREENSHOTS / "sending-study-card-375.png"), full_page=True)
    page.click("#sending .send-alert button")
    page.wait_for_selector("#sending .badge-send-failed", state="detached")
    assert not Send.objects.filter(alert=True).exists()
