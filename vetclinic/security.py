"""The Content-Security-Policy header (Django 5.2 has none of its own).

The policy lets the browser run only our own script files and the inline scripts that carry
this response's nonce, so that text an attacker slips into a page (an owner's name, a DICOM
header shown on a study page) cannot run as script. htmx is configured to match: it evaluates
no attribute as JavaScript (``allowEval`` off; the pages use no ``hx-on`` or trigger filters)
and marks the indicator style it adds with the nonce (templates/base.html).

It is sent when DEBUG is off (Django's debug pages are inline script and style);
``CONTENT_SECURITY_POLICY`` (empty: none) replaces the policy, ``{nonce}`` standing for
``'nonce-…'``.
"""

import secrets

from django.conf import settings
from django.utils.functional import SimpleLazyObject

POLICY = (
    "default-src 'self'; script-src 'self' {nonce}; "
    # Styles may be inline: CSS cannot run script, and the API docs (Swagger UI) set styles inline.
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        made = []

        def nonce():
            made.append(secrets.token_urlsafe(16))
            return made[0]

        # Made only if a template asks for it: JSON answers (the REST hot paths) pay nothing.
        request.csp_nonce = SimpleLazyObject(nonce)
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and not settings.DEBUG and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy.replace(
                "{nonce}", f"'nonce-{made[0]}'" if made else ""
            )
        return response


def csp_nonce(request):
    """Template context: ``csp_nonce`` for inline scripts (the name django-htmx's tag reads)."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
