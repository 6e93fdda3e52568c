"""The photo upload page in headless Chromium: from the patient page, two files chosen, sent
with the upload progress bar (js/importing.js, the DICOM drop card's), one stored and one
refused by name; wide and phone-width screenshots."""

from playwright.sync_api import expect

from tests.test_browser_orders import NARROW, SCREENSHOTS, browser, clinic, log_in, page, shot  # noqa: F401
from tests.test_photos import jpeg


def test_a_vet_adds_photos_from_the_patient_page(page, live_server, clinic, staff, storage_root):  # noqa: F811
    log_in(page, live_server, "veterinarian")
    page.goto(f"{live_server.url}/patients/{clinic.pk}/")
    page.get_by_role("link", name="Add photos or video").click()
    expect(page.locator("h1")).to_contain_text("Add photos or video for Biscuit")
    page.set_input_files("#id_files", [
        {"name": "ear.jpg", "mimeType": "image/jpeg", "buffer": jpeg((320, 240))},
        {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"just some notes"},
    ])  # fmt: skip
    # Every value the bar takes, as the page sets it (its value attribute reflects the property).
    page.evaluate("""() => {
        window.barValues = [];
        window.samePage = true;
        const bar = document.querySelector('.photo-upload .import-progress');
        new MutationObserver(() => window.barValues.push(bar.value))
            .observe(bar, {attributes: true, attributeFilter: ['value']});
    }""")
    page.get_by_role("button", name="Store").click()
    bar = page.locator(".photo-upload .import-progress")
    expect(bar).to_be_visible()
    expect(bar).to_have_js_property("value", 100)
    expect(page.locator(".photo-stored")).to_contain_text("1 file stored")
    expect(page.locator(".photo-stored li")).to_have_text(["ear.jpg"])
    expect(page.locator(".photo-failed li")).to_have_text(
        ["notes.jpg: not a JPEG, PNG, HEIC or MP4 file (its first bytes say so, whatever its name)"]
    )
    expect(page.locator(".photo-upload .import-message")).to_have_text(
        "Done: 1 stored, 1 not stored (see why above)."
    )
    values = page.evaluate("window.barValues")
    assert values[-1] == 100 and values == sorted(values), values  # it went up to 100, never back
    assert page.evaluate("window.samePage")  # sent by the XHR, not a page reload
    assert len([p for p in storage_root.rglob("*") if p.is_file()]) == 1
    shot(page, "photo-upload")
    page.set_viewport_size(NARROW)
    shot(page, "photo-upload")
    assert (SCREENSHOTS / "photo-upload-390.png").exists()
