"""Webhook signatures: HMAC-SHA256 with the subscription's secret over ``<timestamp>.<body>``.

Every delivery carries::

    VetPACS-Signature: t=1795400000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

``t`` is the Unix time of the attempt and ``v1`` the lowercase hex HMAC-SHA256 of the ASCII
timestamp, a full stop and the raw request body. Signing the time stops an old request being
replayed later; a receiver checks both with ``signature_verify`` (or the same few lines in its
own language). More than one ``v1`` may appear, for a receiver that holds an old and a new secret.
"""

import hashlib
import hmac
import secrets
import time

HEADER = "VetPACS-Signature"
SCHEME = "v1"
TOLERANCE = 300  # seconds a signature stays acceptable


class SignatureError(ValueError):
    """The request is not signed with this secret, or the signature is too old."""


def secret_new() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def signature_of(secret: str, timestamp: int | str, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: float | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={timestamp},{SCHEME}={signature_of(secret, timestamp, body)}"


def signature_verify(
    secret: str,
    header: str | None,
    body: bytes,
    tolerance: float | None = TOLERANCE,
    now: float | None = None,
) -> bool:
    """True if ``header`` (the VetPACS-Signature value) signs ``body`` (bytes, as received) with
    ``secret`` and its time is within ``tolerance`` seconds of ``now``; else SignatureError."""
    timestamp: str | None = None
    signatures: list[str] = []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == SCHEME:
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit() or not signatures:
        raise SignatureError(f"Expected 't=<unix time>,{SCHEME}=<hex>', got {header!r}.")
    now = time.time() if now is None else now
    if tolerance is not None and abs(now - int(timestamp)) > tolerance:
        raise SignatureError(f"The signature's time is more than {tolerance} s away from now.")
    expected = signature_of(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise SignatureError("No signature matches this secret and body.")
    return True
