"""The front desk in headless Chromium (Debian's), driven by Playwright against a live server."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from patients.models import Patient
from tests.conftest import PASSWORD, ROOT
from tests.test_browser_orders import browser  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser
SCREENSHOTS = ROOT / "var" / "screenshots"


@pytest.fixture
def page(browser):  # noqa: F811
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    return page


def shot(page, name):
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_front_desk_registers_an_owner_and_a_dog_then_finds_it_by_microchip(
    reference_data, staff, live_server, page
):
    page.goto(live_server.url + reverse("home"))
    assert "/login/" in page.url
    page.fill("#id_username", "frontdesk")
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + "/")

    # A new owner, keyboard only: the form opens with the cursor in the family name.
    page.click("text=New owner")
    page.wait_for_selector("#id_family_name:focus")
    page.keyboard.type("Hartley")
    page.fill("#id_given_name", "Jane")
    page.fill("#id_phone", "01632 960123")
    page.fill("#id_email", "not-an-email")
    page.click("button:has-text('Save owner')")
    assert page.locator(".form-errors").is_visible()  # a clear error, nothing saved
    assert "Enter a valid email address" in page.inner_text("#id_email_error")
    shot(page, "owner-form-error")
    page.fill("#id_email", "jane@example.org")
    page.click("button:has-text('Save owner')")
    page.wait_for_selector("h1:has-text('Hartley, Jane')")

    # The dog, with its breed from the dog breeds the species choice loads.
    page.click("text=Add animal")
    page.fill("#id_name", "Biscuit")
    page.select_option("#id_species", label="Cat")
    # Locator waits, not wait_for_function: the Content-Security-Policy forbids evaluating strings.
    expect(page.locator("#id_breed")).not_to_contain_text("Labrador")
    page.select_option("#id_species", label="Dog")
    expect(page.locator("#id_breed")).to_contain_text("Labrador retriever")
    page.select_option("#id_breed", label="Labrador retriever")
    page.select_option("#id_sex", label="Male")
    page.fill("#id_weight_kg", "31.4")
    page.fill("#id_microchip", "985141000123456")
    shot(page, "patient-form")
    page.click("button:has-text('Save animal')")
    page.wait_for_selector("h1:has-text('Biscuit')")
    shot(page, "patient-page")

    # Found by microchip from the search box as it is typed.
    page.click("text=Patients")
    page.fill("#q", "98514100012")
    page.wait_for_selector("#search-results td a:has-text('Biscuit')")
    row = page.inner_text("#search-results tbody tr")
    assert "Labrador retriever" in row and "Hartley, Jane" in row and "985141000123456" in row
    shot(page, "search-by-microchip")
    page.click("#search-results a:has-text('Biscuit')")
    page.wait_for_selector("text=31.4 kg")

    patient = Patient.objects.get()
    assert (patient.name, patient.breed.name, patient.primary_owner.family_name) == (
        "Biscuit",
        "Labrador retriever",
        "Hartley",
    )
