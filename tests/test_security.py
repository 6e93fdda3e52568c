"""Logins are throttled (django-axes), sessions end when idle or when the browser closes, and a
production configuration passes ``manage.py check --deploy`` with HSTS and a
Content-Security-Policy."""

import re
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.urls import reverse

from tests.conftest import PASSWORD, ROOT

pytestmark = pytest.mark.django_db
WRONG = "not-the-password"


@pytest.fixture
def limit(settings):
    settings.AXES_FAILURE_LIMIT = 5
    return 5


def _attempts(**filters):
    from axes.models import AccessAttempt  # django-axes' record of failed logins

    return AccessAttempt.objects.filter(**filters)


def _login(client, username, password, url=None, address="10.1.1.1"):
    return client.post(
        url or reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_after_the_failure_limit_the_right_password_is_refused_with_the_lockout_page(client, staff, limit):
    for _ in range(limit - 1):
        response = _login(client, "frontdesk", WRONG)
        assert response.status_code == 200 and "Please enter a correct username and password" in response.text
    assert _login(client, "frontdesk", WRONG).status_code == 429  # the last failure allowed locks
    response = _login(client, "frontdesk", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed logins" in response.text and "Try again in 15 minutes" in response.text
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("home")).status_code == 302  # still sent to the login page
    assert _attempts(username="frontdesk").get().failures_since_start >= limit


def test_the_admin_login_is_throttled_too(client, staff, limit):
    staff["admin"].is_staff = True
    staff["admin"].save()
    url = reverse("admin:login")
    for _ in range(limit):
        assert _login(client, "admin", WRONG, url=url).status_code in (200, 429)
    response = _login(client, "admin", PASSWORD, url=url)
    assert response.status_code == 429 and "Too many failed logins" in response.text
    assert "_auth_user_id" not in client.session


def test_an_address_that_tries_many_usernames_is_locked_out_for_all_of_them(client, staff, limit):
    for n in range(limit):
        _login(client, f"guess{n}", WRONG, address="10.9.9.9")
    assert _login(client, "veterinarian", PASSWORD, address="10.9.9.9").status_code == 429
    assert _login(client, "veterinarian", PASSWORD, address="10.1.1.2").status_code == 302  # another computer


def test_fewer_failures_than_the_limit_still_let_the_right_password_in(client, staff, limit):
    for _ in range(limit - 1):
        _login(client, "frontdesk", WRONG)
    assert _login(client, "frontdesk", PASSWORD).status_code == 302
    assert client.session["_auth_user_id"] == str(staff["front desk"].pk)
    assert not _attempts(username="frontdesk").exists()  # a success starts afresh


@pytest.mark.django_db(transaction=True)
def test_when_the_lockout_record_cannot_be_read_the_login_fails_closed(reference_data, client, staff, limit):
    """The users are there but django-axes' table is not: the right password does not get in."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE axes_accessattempt RENAME TO axes_accessattempt_gone")
    try:
        client.raise_request_exception = False
        response = _login(client, "frontdesk", PASSWORD)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE axes_accessattempt_gone RENAME TO axes_accessattempt")
    assert response.status_code >= 400 and "_auth_user_id" not in client.session
    assert "sessionid" not in response.cookies


def test_a_session_ends_when_idle_for_a_working_day_and_when_the_browser_closes(client, staff):
    response = _login(client, "frontdesk", PASSWORD)
    cookie = response.cookies["sessionid"]
    assert cookie["max-age"] == "" and cookie["expires"] == ""  # a browser-session cookie
    assert django_settings.SESSION_COOKIE_AGE == 10 * 3600 and django_settings.SESSION_SAVE_EVERY_REQUEST
    from django.contrib.sessions.models import Session

    row = Session.objects.get(pk=client.session.session_key)
    client.get(reverse("home"))
    assert (
        Session.objects.get(pk=row.pk).expire_date > row.expire_date
    )  # each request starts the idle time afresh


DEPLOY = {
    "PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "vetclinic.settings", "DEBUG": "false",
    "SECRET_KEY": "k7#vX2q!Lr9@pT4zW8mN1bC6yH3jF5dG0sA7eQ2uR9iO4lK8xZ1vB6nM3cV5tY0w",
    "ALLOWED_HOSTS": "pacs.clinic.example",
}  # fmt: skip


def test_a_production_configuration_passes_check_deploy_without_a_warning(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                            env={**DEPLOY, "VAR_DIR": str(tmp_path)}, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


PROBE = """
import django; django.setup()
from django.conf import settings
from django.test import Client, override_settings
# Static files as collected in production would be; here they are not collected.
plain = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
with override_settings(STORAGES=plain):
    response = Client(HTTP_HOST="pacs.clinic.example").get("/login/", secure=True)
print(response.status_code); print(response["Strict-Transport-Security"]); print(response["Content-Security-Policy"])
print(response.content.decode())
"""


def test_in_production_pages_carry_hsts_and_a_csp_whose_nonce_is_on_the_inline_script(tmp_path):
    env = {**DEPLOY, "VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    status, hsts, csp, page = result.stdout.split("\n", 3)
    assert status == "200"
    assert hsts == "max-age=31536000; includeSubDomains; preload"
    nonce = re.search(r"script-src 'self' 'nonce-([\w-]+)'", csp).group(1)
    assert "object-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    assert f'"inlineStyleNonce": "{nonce}"' in page and '"allowEval": false' in page
    assert all(f'nonce="{nonce}"' in tag or " src=" in tag for tag in re.findall(r"<script[^>]*>", page))
