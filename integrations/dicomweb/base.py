"""What every DICOMweb view shares."""

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request
from rest_framework.views import APIView

from integrations.api.errors import error_body
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


def by_method(**views: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """One address, a view for each HTTP method: PS3.18 gives ``/studies`` to QIDO-RS (GET) and
    STOW-RS (POST), ``/studies/{study}`` to WADO-RS (GET) and STOW-RS (POST). Django takes the
    first pattern that matches an address, whatever the method, so each such address has one
    pattern that dispatches here. Another method: 405 in the API's error shape. CSRF is each
    view's own (DRF checks it for a staff session, never for an API key), as for any APIView."""
    allowed = sorted(views)

    def dispatch(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        view = views.get(request.method or "")
        if view is None:
            message = f"{request.method} is not allowed here; {', '.join(allowed)} is."
            return JsonResponse(error_body(405, message), status=405, headers={"Allow": ", ".join(allowed)})
        return view(request, *args, **kwargs)

    return csrf_exempt(dispatch)
