"""Where a webhook may be sent: not into the clinic's own network unless an admin says so.

A subscription's URL is chosen by an API client. Left unchecked, ``http://127.0.0.1:6379/``
makes the worker POST into the clinic's Redis, ``http://169.254.169.254/`` into a cloud's
metadata service, ``http://192.168.1.10/`` into any box on the LAN (server-side request
forgery). So a URL whose host is, or resolves to, a loopback, private, link-local, multicast,
reserved or unspecified address is refused, unless the host, or a network holding the address,
is listed in ``WEBHOOK_ALLOWED_HOSTS`` (a PMS on the clinic's LAN is the usual case).

The check runs when the client subscribes (a clear 400) and again before each attempt, on the
addresses the name resolves to then: DNS can change between the two, or between the check and
the connection (DNS rebinding), so the connection is made to the very address that was checked
(``pinned_connection``), never to the name resolved again.
"""

import ipaddress
import socket
import ssl
from http.client import HTTPConnection
from urllib.parse import SplitResult

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# 6to4 (RFC 3056) and NAT64 (RFC 6052) addresses carry an IPv4 address a router will reach.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(OSError):
    """The URL's host is, or resolves to, an address webhooks may not be sent to."""


def _allowed_entries() -> tuple[set[str], list[Network]]:
    names: set[str] = set()
    networks: list[Network] = []
    for entry in getattr(settings, "WEBHOOK_ALLOWED_HOSTS", []) or []:
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return names, networks


def _embedded_ipv4(ip: Address) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_public(ip: str | Address) -> bool:
    """True for an address on the public Internet: not loopback, private (RFC 1918, unique
    local, carrier-grade NAT), link-local, multicast, reserved or unspecified, nor an IPv6
    address that carries such an IPv4 one (``::ffff:127.0.0.1``)."""
    ip = ipaddress.ip_address(ip)
    embedded = _embedded_ipv4(ip)
    if embedded is not None:  # the packets go to the IPv4 address inside
        return address_public(embedded)
    # is_global is False for every special-purpose range of the IANA registries (loopback,
    # private, link-local, reserved, unspecified, shared, documentation…); multicast is checked
    # apart because global-scope multicast counts as global.
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def address_allowed(hostname: str, ip: str | Address) -> bool:
    """May a webhook for ``hostname`` go to ``ip``? A public address always; any other only
    if an admin listed the host name or a network holding the address."""
    if address_public(ip):
        return True
    names, networks = _allowed_entries()
    if hostname.lower().rstrip(".") in names:
        return True
    ip = ipaddress.ip_address(ip)
    return any(ip.version == n.version and ip in n for n in networks)


def _resolve(hostname: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise OSError(f"{hostname} does not resolve: {error}") from None
    # getaddrinfo gives IPv6 scope ids as "fe80::1%eth0": the scope is not part of the address.
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


def url_host_check(hostname: str | None, port: int) -> None:
    """At subscribe time: refuse a host that is, or resolves now to, a forbidden address.
    A name that does not resolve (yet) is let through; each attempt checks again."""
    if not hostname:
        raise AddressRefused("The URL has no host.")
    try:
        addresses = [str(ipaddress.ip_address(hostname))]
    except ValueError:
        try:
            addresses = _resolve(hostname, port)
        except OSError:
            return
    refused = [a for a in addresses if not address_allowed(hostname, a)]
    if refused:
        raise AddressRefused(
            f"{hostname} is a loopback, private or reserved address ({refused[0]}); webhooks go to the "
            "public Internet unless an admin lists the host in WEBHOOK_ALLOWED_HOSTS."
        )


def address_resolve(hostname: str, port: int) -> str:
    """At send time: the address to connect to, the first the name resolves to that is
    allowed. Raises AddressRefused if none is (every one is refused, so that a name with both
    a public and a private address cannot be steered to the private one)."""
    addresses = _resolve(hostname, port)
    refused = [a for a in addresses if not address_allowed(hostname, a)]
    if refused:
        raise AddressRefused(f"refused: {hostname} resolves to {refused[0]}, not a public address "
                             "(an admin may list it in WEBHOOK_ALLOWED_HOSTS)")  # fmt: skip
    return addresses[0]


class PinnedHTTPConnection(HTTPConnection):
    """An HTTP connection to ``address`` for ``host``: the Host header (and for HTTPS the SNI
    name and the certificate check) are the host's, the TCP connection goes to the address
    that was checked, so a second DNS answer cannot redirect it."""

    def __init__(
        self,
        host: str,
        port: int | None,
        *,
        address: str,
        timeout: float,
        context: ssl.SSLContext | None = None,
    ) -> None:
        if context is not None:
            self.default_port = 443  # https; also keeps the Host header without ":443"
        super().__init__(host, port, timeout=timeout)
        self.address, self.context = address, context

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.context.wrap_socket(sock, server_hostname=self.host) if self.context else sock


def pinned_connection(url: SplitResult, timeout: float) -> PinnedHTTPConnection:
    """A connection for a split webhook URL, to a checked address; raises AddressRefused."""
    if not url.hostname:  # refused at subscribe time already (url_host_check)
        raise AddressRefused("The URL has no host.")
    address = address_resolve(url.hostname, url.port or (443 if url.scheme == "https" else 80))
    context = ssl.create_default_context() if url.scheme == "https" else None  # the certificate is checked
    return PinnedHTTPConnection(url.hostname, url.port, address=address, timeout=timeout, context=context)
