"""Importing in headless Chromium: files chosen on the animal's page (a progress bar, then the
result, the study linked to that animal) and a file dropped on the reconciliation page (it
waits there), wide and at 375 px."""

import base64

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from importing.models import Upload
from tests.test_browser_orders import SCREENSHOTS, WIDE, browser, log_in, page, shot  # noqa: F401  # fixtures
from tests.test_dicomweb_stow import fresh, sent_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
NARROW = {"width": 375, "height": 812}

# The bar's values as the upload goes, kept in sessionStorage: the page moves on to the result.
PROGRESS_WATCH = """() => {
  const bar = document.querySelector('.import-progress');
  sessionStorage.setItem('progress', '');
  new MutationObserver(() => sessionStorage.setItem('progress',
      sessionStorage.getItem('progress') + ' ' + bar.value)).observe(bar, {attributes: true});
}"""


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["wide", "375"])
def test_files_chosen_on_the_animals_page_show_progress_and_the_result_linked_there(
    page, live_server, reference_data, staff, storage_root, celery_worker, make_owner, make_patient, viewport
):
    page.set_viewport_size(viewport)
    biscuit = make_patient("Biscuit", owner=make_owner("Hartley"), patient_id="PX-9")
    ds = fresh(PatientID="ELSEWHERE", PatientName="SMITH^REX", StudyDescription="Thorax")
    log_in(page, live_server, staff["front desk"].username)
    page.goto(live_server.url + reverse("patient_detail", args=[biscuit.pk]))
    expect(page.locator(".import-drop h2")).to_have_text("Import images")
    shot(page, "import-patient")
    page.evaluate(PROGRESS_WATCH)
    page.locator("input[name=files]").set_input_files([
        {"name": "rex.dcm", "mimeType": "application/dicom", "buffer": sent_bytes(ds)},
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"},
    ])  # fmt: skip
    page.wait_for_url(f"{live_server.url}/imports/*/")
    expect(page.locator("#import-summary")).to_have_text("1 file stored, 1 refused")
    # The page follows the linking until it is done (the worker indexes, then links).
    expect(page.locator(".import-studies tbody tr")).to_contain_text("Biscuit", timeout=60_000)
    expect(page.locator(".import-studies tbody tr")).to_contain_text("Thorax")
    expect(page.locator(".import-refused tbody tr")).to_contain_text("notes.txt")
    values = [int(v) for v in page.evaluate("sessionStorage.getItem('progress')").split()]
    assert values and values[-1] == 100 and values == sorted(values), values
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    shot(page, "import-result")
    assert Upload.objects.get().studies[0]["patient"] == str(biscuit)


def test_a_file_dropped_on_the_reconciliation_page_waits_there(
    page, live_server, reference_data, staff, storage_root, celery_worker
):
    ds = fresh(PatientID="NOBODY-1", PatientName="NOBODY^REX", StudyDescription="Abdomen")
    log_in(page, live_server, staff["front desk"].username)
    page.goto(live_server.url + reverse("reconciliation"))
    # A real drop event with a DataTransfer holding the file, as the OS hands it over.
    page.evaluate(
        """data => {
          const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], 'abdomen.dcm', {type: 'application/dicom'}));
          const card = document.querySelector('.import-drop');
          card.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true, cancelable: true}));
          card.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }""",
        base64.b64encode(sent_bytes(ds)).decode(),
    )
    page.wait_for_url(f"{live_server.url}/imports/*/")
    expect(page.locator("#import-summary")).to_have_text("1 file stored, 0 refused")
    expect(page.locator(".import-studies tbody tr")).to_contain_text(
        "Waiting for reconciliation", timeout=60_000
    )
    shot(page, "import-reconciliation")
    page.goto(live_server.url + reverse("reconciliation"))
    expect(page.locator(".study-card h2").first).to_contain_text("Abdomen")


def test_a_cd_folder_chosen_on_the_reconciliation_page_is_read_through_its_dicomdir(
    page, live_server, reference_data, staff, storage_root, celery_worker, tmp_path
):
    import shutil
    from pathlib import Path

    from pydicom.data import get_testdata_file
    from pydicom.fileset import FileSet

    source = Path(get_testdata_file("DICOMDIR")).parent
    cd = tmp_path / "CD"
    listed = [Path(i.path) for i in FileSet(source / "DICOMDIR")]
    for path in [source / "DICOMDIR", *listed]:
        target = cd / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    log_in(page, live_server, staff["front desk"].username)
    page.goto(live_server.url + reverse("reconciliation"))
    page.locator("input[name=folder]").set_input_files(cd)  # as "Choose a folder" gives it
    page.wait_for_url(f"{live_server.url}/imports/*/")
    expect(page.locator("#import-summary")).to_have_text("31 files stored, 0 refused")
    expect(page.locator(".import-studies tbody tr")).to_have_count(6, timeout=60_000)
    assert Upload.objects.get().stored[0]["name"].startswith("CD/")
