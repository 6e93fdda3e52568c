"""Sending from the viewer (viewer/src/send.js, templates/imaging/viewer/_send_panel.html) in
headless Chromium: a vet flags one image of five as a key image (F), sends the key images to a
dcmtk storescp through the REST API with the staff session; the Celery worker sends it, the panel
follows its progress, and exactly that instance arrives. Then the whole study, all five."""

import pydicom
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from imaging.archive.tasks import metadata_keep_task  # noqa: F401  (the ingest fixture's)
from imaging.models import Instance
from sending.models import Send
from tests.test_browser_annotations import PANEL, bella_study, open_viewer, wait_text  # noqa: F401  (fixture)
from tests.test_browser_orders import SCREENSHOTS, browser, log_in, page  # noqa: F401  (fixtures)
from tests.test_dicomweb_wado import ingest  # noqa: F401  (fixture)
from tests.test_sending import node_destination, storescp_start  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SEND = "#viewer-send"


def arrived(folder):
    return sorted(str(pydicom.dcmread(path).SOPInstanceUID) for path in folder.iterdir() if path.is_file())


def send_finished(page, count):
    """The panel's state once its ``count``-th send has finished."""
    try:
        page.wait_for_function(
            """([selector, count]) => {
                const panel = document.querySelector(selector);
                return panel.dataset.send && Number(panel.dataset.send) >= count
                    && ['done', 'partial', 'failed'].includes(panel.dataset.sendState);
            }""",
            arg=[SEND, count],
            timeout=60_000,
        )
    except PlaywrightTimeoutError:
        raise AssertionError(page.inner_text(SEND)) from None
    return page.get_attribute(SEND, "data-send-state")


def test_the_key_image_sent_from_the_viewer_arrives_alone_then_the_whole_study(
    bella_study, staff, live_server, page, storescp_start, celery_worker, storage_root
):
    study = bella_study
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    peer = storescp_start()
    node_destination(peer.port, name="Specialist")
    second = Instance.objects.get(series__study=study, instance_number=2).sop_instance_uid
    log_in(page, live_server, "veterinarian")
    open_viewer(page, live_server, study)

    # Nothing flagged yet: the panel says so and sends nothing.
    page.click(f"{SEND} [data-part=send]")
    wait_text(page, f"{SEND} [data-part=status]", "No key image flagged")
    assert not Send.objects.exists()

    # The second image, flagged with F.
    page.focus("#viewer")
    page.keyboard.press("ArrowDown")
    page.wait_for_function(
        "([panel, sop]) => document.querySelector(panel).viewerApi.activeViewport().getCurrentImageId().includes(sop)",
        arg=[PANEL, second],
    )
    page.keyboard.press("f")
    assert page.get_attribute(f"{PANEL} [data-part=key]", "aria-pressed") == "true"
    wait_text(page, f"{SEND} [data-part=key-count]", "(1)")

    page.select_option(f"{SEND} select[name=destination]", label="Specialist")
    page.check(f"{SEND} input[value=keys]")
    page.click(f"{SEND} [data-part=send]")
    assert send_finished(page, 1) == "done"
    assert page.inner_text(f"{SEND} [data-part=status]") == "Sent 1 of 1 to Specialist."
    assert page.evaluate(f"document.querySelector('{SEND} [data-part=progress]').value") == 1
    send = Send.objects.get()
    assert (send.sop_instance_uids, send.requested_by.username) == ([second], "veterinarian")
    assert arrived(peer.folder) == [second]  # exactly the key image, nothing else
    page.screenshot(path=str(SCREENSHOTS / "viewer-send-key-images.png"))

    # The whole study: the five images.
    page.check(f"{SEND} input[value=study]")
    page.click(f"{SEND} [data-part=send]")
    assert send_finished(page, send.pk + 1) == "done"
    assert page.inner_text(f"{SEND} [data-part=status]") == "Sent 5 of 5 to Specialist."
    assert arrived(peer.folder) == sorted(
        Instance.objects.filter(series__study=study).values_list("sop_instance_uid", flat=True)
    )
    assert not problems, problems
