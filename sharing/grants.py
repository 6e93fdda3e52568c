"""A share link's visitor reading DICOMweb: the link's page puts a signed grant (the link's id)
in the visitor's session; /dicomweb/ (integrations/dicomweb/base.py) authenticates such a
session as a ShareVisitor and lets it GET only the retrieve resources (WADO-RS, rendered,
thumbnail) of the studies the link names, while the link is active.

It fails closed: a missing, tampered or foreign grant, a link revoked or expired since, a
search (QIDO-RS, which could name any study), a write, or any other study UID in the address
is refused. The link is read again on every request, so a revoke takes effect at once. The
retrieve functions filter every series and instance by the study UID of the address
(imaging/archive/objects.py, rendered.py, metadata.py), so a granted study's UID cannot reach
another study's objects."""

from typing import Any

from django.core import signing
from django.http import HttpRequest
from rest_framework import authentication, permissions
from rest_framework.request import Request
from rest_framework.views import APIView

from sharing.models import ShareLink
from vetclinic.audit.services import Actor

SESSION_KEY = "share_grant"
SALT = "sharing.grant"


def grant_set(request: HttpRequest, link: ShareLink) -> None:
    request.session[SESSION_KEY] = signing.dumps(link.pk, salt=SALT)


def grant_link(request: HttpRequest) -> ShareLink | None:
    """The active link the session's grant names, or None."""
    session = getattr(request, "session", None)
    value = session.get(SESSION_KEY) if session is not None else None
    if not isinstance(value, str):
        return None
    try:
        pk = signing.loads(value, salt=SALT)
    except signing.BadSignature:
        return None
    if not isinstance(pk, int):
        return None
    link = ShareLink.objects.select_related("study").filter(pk=pk, kind=ShareLink.Kind.SPECIALIST).first()
    if link is None or link.state() != "active":
        return None
    return link


class ShareVisitor:
    """request.user for a share link's visitor: authenticated to DICOMweb for its studies only,
    no Django permissions."""

    is_authenticated = True
    is_active = True
    is_staff = False
    pk = None

    def __init__(self, link: ShareLink, study_uids: set[str]) -> None:
        self.link = link
        self.study_uids = frozenset(study_uids)
        # The audit's actor of its reads (integrations/api/auth.py actor_for).
        self.actor = Actor.system(f"share link #{link.pk}")

    def get_username(self) -> str:
        return f"share link #{self.link.pk}"

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False


class ShareGrantAuthentication(authentication.BaseAuthentication):
    """Last in DicomWebView's list: an API key or a staff session come first."""

    def authenticate(self, request: Request) -> tuple[ShareVisitor, None] | None:
        link = grant_link(request._request)
        if link is None:
            return None
        uids = {link.study.study_instance_uid, *link.priors.values_list("study_instance_uid", flat=True)}
        return ShareVisitor(link, uids), None


def share_readable(request: Request, view: APIView) -> bool:
    """A visitor's request is allowed only as a GET (or HEAD) of a retrieve resource whose
    address names a granted study."""
    from integrations.dicomweb.rendered import RenderedView, ThumbnailView
    from integrations.dicomweb.wado import (
        BulkDataRetrieve,
        FramesRetrieve,
        InstancesRetrieve,
        MetadataRetrieve,
    )

    user = request.user
    if not isinstance(user, ShareVisitor) or request.method not in ("GET", "HEAD"):
        return False
    readable = (
        InstancesRetrieve,
        MetadataRetrieve,
        FramesRetrieve,
        BulkDataRetrieve,
        RenderedView,
        ThumbnailView,
    )
    if not isinstance(view, readable):
        return False
    study = (getattr(view, "kwargs", None) or {}).get("study")
    return isinstance(study, str) and study in user.study_uids


class ShareAwareScope(permissions.BasePermission):
    """DicomWebView's permission: a visitor by share_readable, anyone else as ResourceScope says."""

    message = "This share link does not give access to that."

    def has_permission(self, request: Request, view: APIView) -> bool:
        from integrations.api.auth import ResourceScope

        if isinstance(request.user, ShareVisitor):
            return share_readable(request, view)
        scope = ResourceScope()
        allowed = scope.has_permission(request, view)
        self.message = scope.message
        return allowed
