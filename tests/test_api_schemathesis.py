"""Schemathesis against the live schema: generated requests (bounded), no 5xx, and every answer
as the schema says (status codes, content types, bodies)."""
import os
import subprocess
from pathlib import Path

import pytest

from integrations.api.clients import api_client_create
from tests.conftest import tool_required

SCHEMATHESIS = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "schemathesis")


@pytest.fixture
def api_key(reference_data, actor, stations):
    _, key = api_client_create(actor=actor, name="Schemathesis", scopes=["*"], rate_limit=100000)
    return key


def test_the_api_keeps_its_schema_under_generated_requests(live_server, api_key, tmp_path):
    tool_required(SCHEMATHESIS)
    done = subprocess.run(
        [SCHEMATHESIS, "run", f"{live_server.url}/api/schema/", "--url", live_server.url,
         "-H", f"Authorization: Bearer {api_key}",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
         "--max-examples", os.environ.get("SCHEMATHESIS_EXAMPLES", "5"), "--seed", "1", "--generation-deterministic",
         "--phases", "examples,coverage,fuzzing", "--workers", "1", "--no-color"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
