"""Schemathesis against the live schema and the live server: every check it has (no 5xx, status
codes, content types, headers, response bodies as the schema says, schema-violating requests
refused, schema-valid ones accepted...), on a few thousand generated requests, over records of
every kind, so that the answers it checks are not just empty lists and 404s.

The run fails if any check fails; it runs in CI on PostgreSQL, which refuses text that SQLite
takes (a NUL), so a hole there shows there."""

import json
import os
import re
import subprocess
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from django.db import connection

from imaging.models import Instance, Series, Study
from imaging.reports import services as report_services
from integrations.api.clients import api_client_create
from integrations.webhooks import services as webhook_services
from tests.conftest import tool_required

SCHEMATHESIS = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "schemathesis")
# Per operation and phase; with every phase and both modes (valid and invalid data), some 3,000 to
# 4,000 requests in all, ~2 minutes on 2 cores.
EXAMPLES = os.environ.get("SCHEMATHESIS_EXAMPLES", "10")
LEAST_CASES = 2000

# Writes whose body names a record (a patient, visit, study, station, procedure, species or breed
# code, crosswalk target) or follows a rule across fields (a person needs a family name): the schema
# can say the type but not which records exist, so for them a 400 naming the field is an answer to
# valid-looking data too. Every other check holds for them as for the rest.
NAMING_RECORDS = [
    ("POST", "/api/v1/owners"), ("PUT", "/api/v1/owners/external/{external_id}"), ("PATCH", "/api/v1/owners/{id}"),
    ("POST", "/api/v1/patients"), ("PUT", "/api/v1/patients/external/{external_id}"),
    ("PATCH", "/api/v1/patients/{id}"), ("POST", "/api/v1/visits"), ("POST", "/api/v1/orders"),
    ("POST", "/api/v1/orders/{id}/reschedule"), ("POST", "/api/v1/orders/{id}/cancel"), ("POST", "/api/v1/reports"),
    ("POST", "/api/v1/reports/{id}/amend"), ("POST", "/api/v1/crosswalk"), ("POST", "/api/v1/webhooks"),
    ("PATCH", "/api/v1/webhooks/{id}"), ("PUT", "/api/v1/studies/{id}/annotations"),
    ("POST", "/api/v1/studies/{id}/annotations/key-image"), ("POST", "/api/v1/studies/{id}/annotations/export"),
    # Sharing: priors must be the same animal's studies.
    ("POST", "/api/v1/studies/{id}/share-links"), ("POST", "/api/v1/studies/{id}/consults"),
]  # fmt: skip


@pytest.fixture
def api_key(reference_data, actor, stations):
    _, key = api_client_create(actor=actor, name="Schemathesis", scopes=["*"], rate_limit=1_000_000)
    return key


@pytest.fixture
def records(api_key, actor, make_owner, make_patient, make_order, labrador):
    """One record of every kind the API shows, and the ids the run asks for most of the time."""
    from integrations.models import ApiClient

    owner = make_owner("Hartley", given_name="Jane")
    patient = make_patient("Biscuit", owner=owner, breed=labrador, microchip="985141000123456")
    order = make_order(patient)
    linked = Study.objects.create(
        study_instance_uid="2.25.1001", patient=patient, order=order, link=Study.Link.ORDER,
        accession_number=order.accession_number, study_date=date(2026, 11, 23), study_time=time(10, 5, 3, 250000),
    )  # fmt: skip
    series = Series.objects.create(
        study=linked, series_instance_uid="2.25.1001.1", modality="DX", series_number=1
    )
    Instance.objects.create(series=series, sop_instance_uid="2.25.1001.1.1", sop_class_uid="1.2.840.10008.5.1.4.1.1.1.1",
                            transfer_syntax_uid="1.2.840.10008.1.2.1", file_size=1, storage_key="schemathesis/1")  # fmt: skip
    Study.objects.create(
        study_instance_uid="2.25.1002", study_date=date(2026, 11, 24), study_time=time(9, 0)
    )  # unmatched
    report = report_services.report_finalize(
        actor=actor, study=linked, findings="Clear lungs.", conclusion="Normal."
    )
    client = ApiClient.objects.get(name="Schemathesis")
    subscription, _ = webhook_services.subscription_create(
        actor=actor,
        client=client,
        url="https://pms.example/hook",
        events=["study.received", "report.finalized"],
    )
    created = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    (delivery,) = webhook_services.event_publish(
        event="study.received", data={"study": {"id": linked.pk}}, created=created
    )
    return {
        "owners": owner.pk, "patients": patient.pk, "orders": order.pk, "studies": linked.pk, "reports": report.pk,
        "webhooks": subscription.pk, "deliveries": delivery.pk,
    }  # fmt: skip


def config(records):
    """schemathesis.toml: the records' ids for the paths that name one, and the records bodies
    name, most of the time (the rest are generated); the writes above."""
    paths = {"owners": "/api/v1/owners/", "patients": "/api/v1/patients/", "orders": "/api/v1/orders/",
             "studies": "/api/v1/studies/", "reports": "/api/v1/reports/", "webhooks": "/api/v1/webhooks/",
             "deliveries": "/api/v1/webhooks/deliveries/"}  # fmt: skip
    # Bodies name these most of the time, so that writes get past "no such record" and their
    # 201s and 200s are checked too.
    named = {"patient": records["patients"], "study": records["studies"], "procedure": "DX-THX2", "station": "DRROOM",
             "species.code": "448771007", "breed.code": "62137007", "target": "448771007",
             "owners[*].owner": records["owners"]}  # fmt: skip
    lines = [
        "[checks.positive_data_acceptance]",
        'expected-statuses = ["2xx", "401", "403", "404", "409", "429"]',
        "",
    ]
    for name in paths:
        lines += [f"[dictionaries.{name}]", f"values = [{records[name]}]", ""]
    for n, value in enumerate(named.values()):
        lines += [f"[dictionaries.body{n}]", f"values = [{json.dumps(value)}]", ""]
    lines.append("[parameters]")
    for n, field in enumerate(named):
        lines.append(f'"body.{field}" = {{ dictionary = "body{n}", probability = 0.8 }}')
    lines.append("")
    for name, prefix in paths.items():
        lines += [
            "[[operations]]", f'include-path-regex = "^{re.escape(prefix)}\\\\{{id\\\\}}"',
            f'parameters = {{ "path.id" = {{ dictionary = "{name}", probability = 0.8 }} }}', "",
        ]  # fmt: skip
    for method, path in NAMING_RECORDS:
        lines += [
            "[[operations]]", f'include-method = "{method}"', f'include-path = "{path}"',
            'checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]', "",
        ]  # fmt: skip
    return "\n".join(lines)


def test_the_api_keeps_its_schema_under_every_check_on_thousands_of_generated_requests(
    live_server, records, api_key, tmp_path
):
    tool_required(SCHEMATHESIS)
    if os.environ.get("CI"):
        assert connection.vendor == "postgresql", "CI runs this against PostgreSQL"
    (tmp_path / "schemathesis.toml").write_text(config(records))
    done = subprocess.run(
        [SCHEMATHESIS, "--config-file", str(tmp_path / "schemathesis.toml"), "run", f"{live_server.url}/api/schema/",
         "--url", live_server.url, "-H", f"Authorization: Bearer {api_key}", "--checks", "all",
         "--max-examples", EXAMPLES, "--seed", "1", "--generation-deterministic", "--workers", "2", "--no-color",
         "--continue-on-failure"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    output = done.stdout[-60000:] + done.stderr[-2000:]
    print(done.stdout[-1500:])  # the summary: cases, phases, time (shown with -rP)
    assert done.returncode == 0, output
    cases = re.search(r"Test cases:\s+(\d+) generated", done.stdout)
    assert cases and int(cases.group(1)) >= LEAST_CASES, output
