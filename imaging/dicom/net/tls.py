"""TLS for DICOM (PS3.15 B.9, the BCP 195 TLS Secure Transport Connection Profile: TLS 1.2 or
later), the contexts built in one place: the listener's, and a client's for sending to other
nodes. PEM files; where they come from is the caller's (settings.DICOM_TLS_* for the listener).

A registered node with "use TLS" (imaging.Modality.tls) is connected to over TLS when we are
the requestor: C-MOVE's sub-operations (handlers_retrieve.on_move hands ``node_tls_args`` to
the association) and a Storage Commitment report on a new association (commitment.py
report_deliver). Its certificate chain is always verified (PS3.15 B.9: the nodes authenticate
each other by certificate): against the node's own authorities, else DICOM_TLS_CA, else the
system's; its host name too (BCP 195 asks for the server identity check of RFC 6125) unless
the node's record says not to: many devices' certificates name no address. We present the
listener's certificate (DICOM_TLS_CERT/KEY) when there is one: peers such as dcmtk's storescp
+tls require one by default."""

import re
import ssl
from os import PathLike
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from imaging.models import Modality

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
    *,
    ca: PemPath | None = None,
    cert: PemPath | None = None,
    key: PemPath | None = None,
    ca_pem: str | None = None,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A context for connecting to another DICOM node: its certificate checked against ``ca``
    or ``ca_pem`` (PEM text; else the system's authorities), and its host name unless
    ``check_hostname`` is False; ours presented if given. A handshake that fails is kept on the
    context (``handshake_failure``) for the caller to say why."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca, cadata=ca_pem or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = check_hostname  # the chain is verified either way (CERT_REQUIRED)
    if cert:
        context.load_cert_chain(cert, key)
    context.sslsocket_class = HandshakeRecordingSocket
    return context


class HandshakeRecordingSocket(ssl.SSLSocket):
    """An SSLSocket that keeps a failed handshake's error on its context: pynetdicom logs it and
    reports only that the association could not be made (transport.AssociationSocket.connect),
    and a C-MOVE's Error Comment or a report's delivery error should say "certificate not
    trusted", not "unreachable"."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except (ssl.SSLError, OSError) as error:
            self.context.handshake_error = error  # type: ignore[attr-defined]  # ours, read by handshake_failure
            raise


def handshake_failure(context: ssl.SSLContext | None) -> str | None:
    """Why the last handshake made with ``context`` (a client_context) failed, in a few words
    (for an Error Comment, 64 characters at most with its prefix); None if it did not fail."""
    error = getattr(context, "handshake_error", None)
    if error is None:
        return None
    if isinstance(error, ssl.SSLCertVerificationError):  # "self-signed certificate", "Hostname mismatch ..."
        return str(error.verify_message or "certificate not trusted")
    if isinstance(error, ssl.SSLError):
        return str(error.reason or error.strerror or error)
    return str(error.strerror or error)


def node_tls_args(node: "Modality") -> tuple[ssl.SSLContext, str] | None:
    """pynetdicom's ``tls_args`` (context, server host name) for connecting to a registered node,
    or None when it does not use TLS (see the module's docstring)."""
    if not node.tls:
        return None
    context = client_context(
        ca=None if node.tls_ca_certificates.strip() else (settings.DICOM_TLS_CA or None),
        ca_pem=node.tls_ca_certificates.strip() or None,
        cert=settings.DICOM_TLS_CERT or None,
        key=settings.DICOM_TLS_KEY or None,
        check_hostname=node.tls_check_hostname,
    )
    return context, node.host


def authorities_check(pem: str) -> str | None:
    """Why ``pem`` cannot serve as a node's TLS authorities, or None if it can."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=pem.strip())
    except (ssl.SSLError, ValueError) as error:
        return "Not PEM certificates: " + re.sub(r" \(_ssl\.c:\d+\)$", "", str(error))
    if not context.cert_store_stats()["x509"]:
        return "No certificate found (expected -----BEGIN CERTIFICATE----- blocks)"
    return None


def listener_context() -> ssl.SSLContext | None:
    """The listener's context from the settings, or None: plain TCP."""
    if not settings.DICOM_TLS_CERT:
        return None
    return server_context(
        cert=settings.DICOM_TLS_CERT, key=settings.DICOM_TLS_KEY, ca=settings.DICOM_TLS_CA or None
    )
