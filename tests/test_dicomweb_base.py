"""What every /dicomweb/ address shares: JSON errors, CORS only for the listed origins, and a
move destination that can be reached."""

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from imaging.models import Modality

pytestmark = pytest.mark.django_db


def test_an_unknown_dicomweb_address_is_a_json_404(client):
    response = client.get("/dicomweb/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_cors_headers_only_for_a_listed_origin_and_only_under_dicomweb(client):
    origin = "https://viewer.clinic.example"
    response = client.options(
        "/dicomweb/studies", HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )
    assert "access-control-allow-origin" not in response.headers  # off by default
    with override_settings(CORS_ALLOWED_ORIGINS=[origin]):
        response = client.options(
            "/dicomweb/studies", HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
        )
        assert response.headers["access-control-allow-origin"] == origin
        assert "access-control-allow-origin" not in client.get("/api/v1/health", HTTP_ORIGIN=origin).headers
        other = client.options(
            "/dicomweb/studies",
            HTTP_ORIGIN="https://elsewhere.example",
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        )
        assert "access-control-allow-origin" not in other.headers


def test_a_move_destination_needs_a_host_and_a_port():
    node = Modality(ae_title="HOROS", modality_type="OT", move_destination=True)
    with pytest.raises(ValidationError) as error:
        node.full_clean()
    assert "port" in error.value.message_dict
    node.host, node.port = "192.168.1.30", 11112
    node.full_clean()
