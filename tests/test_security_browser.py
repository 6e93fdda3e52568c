"""The UI under the production Content-Security-Policy, in headless Chromium: the live server
runs with DEBUG off, so every page carries the policy; the search, the schedule form's free
slots, the day board's refresh and the admin work, and the browser reports no violation."""

from datetime import date

import pytest
from django.urls import reverse

from tests.conftest import PASSWORD
from tests.test_browser_orders import browser, clinic  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
DAY = date(2030, 3, 4)  # a Monday to come: free slots all day


def _watched(browser):  # noqa: F811 (the fixture's value)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    page.problems, page.policies = [], []
    # (The admin's pages have no icon link: Chromium asks for /favicon.ico, which is not there.)
    page.on("console", lambda m: m.type in ("error", "warning") and not m.location.get("url", "").endswith("/favicon.ico")
            and page.problems.append(m.text))  # fmt: skip
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("response", lambda r: r.status >= 400 and page.problems.append(f"{r.status} {r.url}"))
    page.on("response", lambda r: r.request.resource_type == "document"
            and page.policies.append(r.headers.get("content-security-policy")))  # fmt: skip
    return page


def test_the_pages_work_under_the_csp_and_the_browser_reports_no_violation(
    clinic, staff, live_server, browser
):  # noqa: F811
    page = _watched(browser)
    page.goto(live_server.url + reverse("login"))
    page.fill("#id_username", "frontdesk")
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + "/")

    page.fill("#q", "hartley")  # as-you-type search (htmx)
    page.wait_for_selector("a:has-text('Biscuit')")

    form = reverse("order_create") + f"?patient={clinic.pk}&station=DRROOM&day={DAY.isoformat()}"
    page.goto(live_server.url + form)
    slot = page.wait_for_selector("#slots .free button.slot")  # the day is free: 08:00-19:00
    slot.click()  # js/vetpacs.js puts its time in the form (it was an hx-on attribute)
    assert page.input_value("#id_time") == slot.get_attribute("data-time") == "08:00"

    page.goto(live_server.url + reverse("order_board") + f"?day={DAY.isoformat()}&station=DRROOM")
    page.wait_for_selector("#board")
    with page.expect_response(
        lambda r: "/orders/board/" in r.url and r.request.headers.get("hx-request") == "true"
    ):
        page.evaluate("htmx.trigger('#board', 'board-refresh')")  # what the 10 s timer sends

    admin = _watched(browser)
    admin.goto(live_server.url + reverse("admin:login"))
    admin.fill("#id_username", "admin")
    admin.fill("#id_password", PASSWORD)
    admin.click("input[type=submit]")
    admin.wait_for_selector("#site-name")
    admin.goto(live_server.url + reverse("admin:auth_user_changelist"))
    admin.wait_for_selector("#result_list")

    # The API docs: Swagger UI's set-up script is a file of its own (SpectacularSwaggerSplitView).
    admin.goto(live_server.url + reverse("api_docs"))
    assert "VetPACS API" in admin.wait_for_selector(".swagger-ui .info .title").inner_text()
    admin.wait_for_selector("#model-WebhookSubscription")  # the schema was fetched and drawn

    assert page.problems == [] and admin.problems == []
    policies = page.policies + admin.policies
    assert len(policies) >= 6 and all(
        p and p.startswith("default-src 'self'; script-src 'self'") for p in policies
    )
    assert "'nonce-" in page.policies[0]  # our pages mark their inline script; the admin's have none
