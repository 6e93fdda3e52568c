"""TLS for DICOM (PS3.15 B.9, the BCP 195 TLS Secure Transport Connection Profile: TLS 1.2 or
later), the contexts built in one place: the listener's, and a client's for sending to other
nodes. PEM files; where they come from is the caller's (settings.DICOM_TLS_* for the listener)."""

import ssl
from os import PathLike

from django.conf import settings

PemPath = str | PathLike[str]  # a PEM file


def server_context(*, cert: PemPath, key: PemPath | None, ca: PemPath | None = None) -> ssl.SSLContext:
    """The listener's context: our certificate chain and key; with ``ca``, a caller must present
    a certificate that it signed (PS3.15 B.9 lets either side ask for the other's)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if ca:
        context.load_verify_locations(cafile=ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(
    *, ca: PemPath | None = None, cert: PemPath | None = None, key: PemPath | None = None
) -> ssl.SSLContext:
    """A context for connecting to another DICOM node: its certificate checked against ``ca``
    (else the system's authorities) and its host name; ours presented if given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        context.load_cert_chain(cert, key)
    return context


def listener_context() -> ssl.SSLContext | None:
    """The listener's context from the settings, or None: plain TCP."""
    if not settings.DICOM_TLS_CERT:
        return None
    return server_context(
        cert=settings.DICOM_TLS_CERT, key=settings.DICOM_TLS_KEY, ca=settings.DICOM_TLS_CA or None
    )
