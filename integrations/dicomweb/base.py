"""What every DICOMweb view shares."""

import math
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import throttling
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from integrations.api.auth import ClientUser
from integrations.api.errors import error_body
from integrations.api.renderers import JSONRenderer
from sharing.grants import ShareAwareScope, ShareGrantAuthentication

DICOM_JSON = "application/dicom+json"  # PS3.18 8.7.3.1, the DICOM JSON Model of PS3.18 F.2


class DicomJSONRenderer(JSONRenderer):
    media_type = DICOM_JSON
    format = "dicomjson"


class DicomWebRateThrottle(throttling.BaseThrottle):
    """How often an API client may call DICOMweb: a viewer loading a 500-slice CT series asks
    for 500 frames (or 500 ``/rendered``) in a few seconds, so the REST API's per-client rate
    (ApiClient.rate_limit, 600 a minute by default) would stop it half-way. DICOMweb requests
    are counted apart from the REST API's, per client, at ``DICOMWEB_RATE_LIMIT`` a minute or
    the client's own rate limit if that is higher; what it protects against is a runaway or
    abusive client, not a viewer. Staff sessions are not limited (as in the REST API).

    A token bucket (one minute's requests of burst, refilled evenly): two numbers in the cache
    per client, the same work whatever the rate, where DRF's SimpleRateThrottle keeps (and
    pickles, on every request) a list of a minute's request times. Over it: 429 in the API's
    error shape with Retry-After (DRF's Throttled, integrations/api/errors.py)."""

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        user = request.user
        link = getattr(user, "link", None)  # a share link's visitor (sharing/grants.py): per link
        if isinstance(user, ClientUser):
            per_minute = max(int(settings.DICOMWEB_RATE_LIMIT), int(user.client.rate_limit))
            key = f"dicomweb-throttle-{user.client.pk}"
        elif link is not None:
            per_minute = int(settings.DICOMWEB_RATE_LIMIT)
            key = f"dicomweb-throttle-share-{link.pk}"
        else:
            return True
        per_second = per_minute / 60
        moment = time.time()
        tokens, last = cache.get(key) or (float(per_minute), moment)
        tokens = min(float(per_minute), tokens + max(0.0, moment - last) * per_second)
        if tokens < 1:
            self.retry_after = (1 - tokens) / per_second
            cache.set(key, (tokens, moment), 120)
            return False
        cache.set(key, (tokens - 1, moment), 120)  # (idle a minute, it is full again anyway)
        return True

    def wait(self) -> float | None:
        # Whole seconds, at least 1 (DRF writes Retry-After as an integer: 0.4 would say 0).
        return None if self.retry_after is None else max(1, math.ceil(self.retry_after))


class DicomWebView(APIView):
    """A DICOMweb resource. Reads need ``studies:read`` and writes ``studies:write`` for an API
    client (integrations/api/auth.py ResourceScope), or the matching permission for staff;
    errors are the REST API's JSON error body, a 4xx that says what was wrong."""

    resource = "studies"
    schema = None  # PS3.18 defines these resources; the REST API's OpenAPI schema does not list them
    renderer_classes = [DicomJSONRenderer, JSONRenderer]
    throttle_classes = [DicomWebRateThrottle]
    # A share link's visitor (sharing/grants.py): after the API key and the staff session, and
    # allowed to read the link's studies only.
    authentication_classes = [
        *api_settings.DEFAULT_AUTHENTICATION_CLASSES,  # type: ignore[list-item]  # (DRF's settings: classes)
        ShareGrantAuthentication,
    ]
    permission_classes = [IsAuthenticated, ShareAwareScope]

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
