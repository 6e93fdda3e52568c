"""What every DICOMweb view shares."""

from typing import Any

from rest_framework.request import Request
from rest_framework.views import APIView

from integrations.api.renderers import JSONRenderer

DICOM_JSON = "application/dicom+json"  # PS3.18 8.7.3.1, the DICOM JSON Model of PS3.18 F.2


class DicomJSONRenderer(JSONRenderer):
    media_type = DICOM_JSON
    format = "dicomjson"


class DicomWebView(APIView):
    """A DICOMweb resource. Reads need ``studies:read`` and writes ``studies:write`` for an API
    client (integrations/api/auth.py ResourceScope), or the matching permission for staff;
    errors are the REST API's JSON error body, a 4xx that says what was wrong."""

    resource = "studies"
    schema = None  # PS3.18 defines these resources; the REST API's OpenAPI schema does not list them
    renderer_classes = [DicomJSONRenderer, JSONRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        """A view that answers with a multipart or image body of its own reads the Accept header
        itself (PS3.18 8.7: media types with parameters DRF's negotiation does not know, such as
        ``multipart/related; type="application/dicom"; transfer-syntax=*``). DRF must not answer
        406 before the view runs: with ``force`` it falls back to DICOM JSON, used for errors."""
        return super().perform_content_negotiation(request, force=True)
