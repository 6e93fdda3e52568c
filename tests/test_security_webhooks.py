"""Webhooks do not reach into the clinic's own network (server-side request forgery): a URL on
a loopback, private, link-local, multicast or reserved address is refused when a client
subscribes and again, after resolving the name, before each attempt; the connection goes to
the address that was checked. An admin lets a PMS on the LAN through WEBHOOK_ALLOWED_HOSTS."""

import ssl
import subprocess
from urllib.parse import urlsplit

import pytest

from integrations.models import WebhookDelivery, WebhookSubscription
from integrations.webhooks import delivery as webhook_delivery
from integrations.webhooks import services
from integrations.webhooks.addresses import (
    AddressRefused,
    PinnedHTTPConnection,
    address_public,
    pinned_connection,
)
from integrations.webhooks.signing import signature_header
from integrations.webhooks.views import SubscriptionDetail
from tests import test_webhooks
from tests.test_webhooks import SECRET, Receiver

# The API client, its HTTP client and the event publishing of the webhook tests.
make_client, acme = test_webhooks.make_client, test_webhooks.acme
queued, publish = test_webhooks.queued, test_webhooks.publish

REFUSED = [
    "http://127.0.0.1:6379/",  # the clinic's Redis
    "http://localhost:8000/admin/",
    "http://10.0.0.5/hooks",
    "http://192.168.1.20:8080/hooks",
    "http://172.16.0.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
    "http://0.0.0.0:6379/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://[::1]:6379/",
    "http://[::ffff:127.0.0.1]:6379/",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]/",
    "http://[2002:7f00:1::]/",  # 6to4 around 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 around 169.254.169.254
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://[::]/",
    "https://[ff02::1]/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_subscribing_a_url_into_the_clinics_network_gets_400_naming_url(acme, url):
    response = acme.http.post("/api/v1/webhooks", {"url": url, "events": ["study.received"]}, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert list(error["fields"]) == ["url"] and "WEBHOOK_ALLOWED_HOSTS" in error["fields"]["url"][0]
    assert not WebhookSubscription.objects.exists()


def test_changing_a_url_to_a_private_address_is_refused_and_changes_nothing(acme):
    created = acme.http.post("/api/v1/webhooks", {"url": "https://pms.example/h", "events": ["study.received"]},
                             format="json").json()  # fmt: skip
    response = acme.http.patch(
        f"/api/v1/webhooks/{created['id']}", {"url": "http://127.0.0.1:6379/"}, format="json"
    )
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["url"]
    assert WebhookSubscription.objects.get().url == "https://pms.example/h"


def test_an_admin_lets_a_listed_host_or_network_through(acme, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["pms.clinic.lan", "192.168.1.0/24", "localhost"]
    for url in ["http://192.168.1.20:8080/hooks", "http://localhost:9/h"]:
        response = acme.http.post(
            "/api/v1/webhooks", {"url": url, "events": ["study.received"]}, format="json"
        )
        assert response.status_code == 201, response.json()
    refused = acme.http.post("/api/v1/webhooks", {"url": "http://192.168.2.20/", "events": ["study.received"]},
                             format="json")  # fmt: skip
    assert refused.status_code == 400
    assert sorted(WebhookSubscription.objects.values_list("url", flat=True)) == [
        "http://192.168.1.20:8080/hooks",
        "http://localhost:9/h",
    ]


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3", "169.254.169.254", "fe80::1",
                                     "0.0.0.0", "::", "224.0.0.1", "239.255.255.250", "ff0e::1", "255.255.255.255",
                                     "2002:c0a8:101::", "64:ff9b::7f00:1", "192.0.2.1", "198.18.0.1"])  # fmt: skip
def test_special_purpose_addresses_are_not_public(address):
    assert address_public(address) is False


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_internet_addresses_are_public(address):
    assert address_public(address) is True


def test_a_name_that_resolves_to_loopback_when_sent_is_refused_and_nothing_is_posted(
    acme, actor, queued, publish, settings
):
    """Subscribed while allowed (or while the name pointed elsewhere); by the time of the
    attempt it resolves to 127.0.0.1 and nobody listed it: the attempt fails unsent."""
    pms = Receiver()
    try:
        settings.WEBHOOK_ALLOWED_HOSTS = ["localhost"]
        port = urlsplit(pms.url).port
        services.subscription_create(actor=actor, client=acme.client, url=f"http://localhost:{port}/hooks",
                                     events=["study.received"], secret=SECRET)  # fmt: skip
        settings.WEBHOOK_ALLOWED_HOSTS = []
        [delivery] = publish()
        with pytest.raises(webhook_delivery.SendLater):
            webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=0)
    finally:
        pms.close()
    assert pms.received == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and delivery.attempts == 1 and delivery.response_codes == [None]
    assert "refused: localhost resolves to 127.0.0.1" in delivery.error


def test_the_connection_goes_to_the_checked_address_not_to_a_new_dns_answer(settings):
    """pms.example resolves to nothing at all; a connection pinned to the receiver's address
    reaches it, with the name in the Host header: the name is never looked up again."""
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    pms = Receiver()
    try:
        port = urlsplit(pms.url).port
        connection = PinnedHTTPConnection("pms.example", port, address="127.0.0.1", timeout=5)
        body = b'{"event":"study.received"}'
        connection.request("POST", "/hooks", body, {"Content-Type": "application/json",
                                                    "VetPACS-Signature": signature_header(SECRET, body)})  # fmt: skip
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        pms.close()
    [got] = pms.received
    assert got.headers["Host"] == f"pms.example:{port}" and got.verified is True


def test_a_name_that_does_not_resolve_is_not_connected_to(settings):
    with pytest.raises(OSError, match="does not resolve"):
        pinned_connection(urlsplit("http://pms.example/h"), timeout=5)
    with pytest.raises(AddressRefused, match="resolves to 127.0.0.1"):
        pinned_connection(urlsplit("http://localhost/h"), timeout=5)


def _certificate(folder, name):
    """A CA and a certificate it signed for ``name`` (openssl), as PEM files."""

    def run(*args):
        subprocess.run(["/usr/bin/openssl", *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=Test CA")  # fmt: skip
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        f"/CN={name}",
    )
    (folder / "san.ext").write_text(f"subjectAltName=DNS:{name}\n")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.pem",
        "-days", "2", "-extfile", "san.ext")  # fmt: skip
    return folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key"


def test_over_https_the_pinned_connection_checks_the_certificate_against_the_name(tmp_path):
    """Connected to the checked address, TLS still names the host (SNI) and checks its
    certificate: right for pms.example, refused for a name the certificate is not for."""
    ca, cert, key = _certificate(tmp_path, "pms.example")
    pms = Receiver()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    pms.server.socket = server_context.wrap_socket(pms.server.socket, server_side=True)
    port = pms.server.server_address[1]
    client_context = ssl.create_default_context(cafile=str(ca))
    try:
        body = b'{"event":"study.received"}'
        headers = {"Content-Type": "application/json", "VetPACS-Signature": signature_header(SECRET, body)}
        good = PinnedHTTPConnection(
            "pms.example", port, address="127.0.0.1", timeout=5, context=client_context
        )
        good.request("POST", "/hooks", body, headers)
        assert good.getresponse().status == 200
        good.close()
        wrong = PinnedHTTPConnection(
            "other.example", port, address="127.0.0.1", timeout=5, context=client_context
        )
        with pytest.raises(ssl.SSLCertVerificationError, match="other.example"):
            wrong.request("POST", "/hooks", body, headers)
    finally:
        pms.close()
    [got] = pms.received
    assert got.headers["Host"] == f"pms.example:{port}" and got.verified is True


def test_a_subscription_deleted_while_it_is_being_changed_is_404_not_500(acme, monkeypatch):
    """Two requests at once (found by Schemathesis): the PATCH read the subscription, a DELETE
    removed it, then the PATCH's locked read found nothing."""
    created = acme.http.post(
        "/api/v1/webhooks", {"url": "https://pms.example/h", "events": ["study.received"]}, format="json"
    ).json()
    detail = SubscriptionDetail.get_object

    def read_then_deleted_by_another_request(view):
        subscription = detail(view)
        WebhookSubscription.objects.filter(pk=subscription.pk).delete()
        return subscription

    monkeypatch.setattr(SubscriptionDetail, "get_object", read_then_deleted_by_another_request)
    response = acme.http.patch(f"/api/v1/webhooks/{created['id']}", {"description": "x"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
