"""Who is calling, what they may do, and how often.

``Authorization: Bearer <key>`` names an API client; a staff member's session works too. Each
view names its resource (``resource = "patients"``); a client needs ``patients:read`` for
reads and ``patients:write`` for writes; staff need the model permissions their role gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.db.models import Model
from django.utils.timezone import now
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from integrations.api.clients import api_client_for_key
from integrations.models import ApiClient
from vetclinic.audit.models import Channel
from vetclinic.audit.services import Actor

# Names for the hints only: DRF's settings import this module while rest_framework.views loads.
if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema
    from rest_framework.request import Request
    from rest_framework.views import APIView


class ClientUser:
    """request.user for an API client: authenticated, no Django permissions."""

    is_authenticated = True
    is_active = True
    is_staff = False
    pk = None

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def get_username(self) -> str:
        return self.client.name

    def has_perm(self, perm: str, obj: Model | None = None) -> bool:
        return False


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ClientUser, ApiClient] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header:
            return None
        kind, _, key = header.partition(" ")
        if kind.lower() != "bearer" or not key.strip():
            raise exceptions.AuthenticationFailed("Send the API key as 'Authorization: Bearer <key>'.")
        client = api_client_for_key(key.strip())
        if client is None:
            raise exceptions.AuthenticationFailed("This API key is not valid or has been revoked.")
        moment = now()
        if client.last_used is None or (moment - client.last_used).total_seconds() > 60:
            ApiClient.objects.filter(pk=client.pk).update(last_used=moment)
            client.last_used = moment  # the kept client too (clients.py): once a minute, not each request
        return ClientUser(client), client

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="VetPACS"'


# The Django permission a staff member needs, per resource, to read / to write.
STAFF_PERMS = {
    "owners": ("patients.view_owner", "patients.change_owner"),
    "patients": ("patients.view_patient", "patients.change_patient"),
    "visits": ("patients.view_visit", "patients.change_visit"),
    "orders": ("imaging.view_imagingorder", "imaging.change_imagingorder"),
    "studies": ("imaging.view_study", "imaging.change_study"),
    "reports": ("imaging.view_report", "imaging.change_report"),
    "annotations": ("imaging.view_annotationset", "imaging.change_annotationset"),
    "reference": ("patients.view_species", "patients.change_species"),
    "webhooks": ("integrations.view_apiclient", "integrations.change_apiclient"),
    "sends": ("sending.view_send", "sending.add_send"),
}


class ResourceScope(permissions.BasePermission):
    message = "This API client's scopes do not allow that."

    def has_permission(self, request: Request, view: APIView) -> bool:
        resource = getattr(view, "resource", None)
        if resource is None:
            return True  # health, schema
        write = request.method not in permissions.SAFE_METHODS
        if isinstance(request.user, ClientUser):
            if not request.user.client.allows(resource, write):
                self.message = f"This API client has no '{resource}:{'write' if write else 'read'}' scope."
                return False
            return True
        user = request.user
        return bool(
            user and user.is_authenticated and user.has_perm(STAFF_PERMS[resource][1 if write else 0])
        )


class ClientRateThrottle(throttling.SimpleRateThrottle):
    """Each client's own requests per minute (ApiClient.rate_limit); staff are not limited."""

    scope = "client"

    def get_rate(self) -> str | None:
        return None  # set per request in allow_request

    def allow_request(self, request: Request, view: APIView) -> bool:
        if not isinstance(request.user, ClientUser):
            return True
        self.rate = f"{request.user.client.rate_limit}/min"
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: APIView) -> str:
        user = cast(ClientUser, request.user)  # (allow_request asks only for a client's requests)
        return f"api-throttle-{user.client.pk}"


def actor_for(request: Request) -> Actor:
    """The audit actor: the API client (channel api), or the staff member using the API."""
    if isinstance(request.user, ClientUser):
        return Actor(channel=Channel.API, name=request.user.client.name)
    visitor_actor = getattr(request.user, "actor", None)  # a share link's visitor (sharing/grants.py)
    if isinstance(visitor_actor, Actor):
        return visitor_actor
    return Actor.for_user(request.user, channel=Channel.API)


# (drf-spectacular registers an extension in its untyped __init_subclass__.)
class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """The schema says how to authenticate: a bearer API key."""

    target_class = "integrations.api.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API client's key: `Authorization: Bearer vp_…`",
        }
