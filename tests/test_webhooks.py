"""Webhooks: signing, sending to a real HTTP receiver on a local socket, retries, the failure
streak that disables a subscription, the events, and the API a client manages them with.

The sending here runs in the test process (delivery_send, as the task calls it); a real Celery
worker sends in test_webhooks_worker.py."""

import json
import threading
import time
import types
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.test import APIClient

from imaging.orders import services as orders
from integrations import tasks
from integrations.api.clients import api_client_create
from integrations.models import ApiClient, HL7Endpoint, HL7Message, WebhookDelivery, WebhookSubscription
from integrations.webhooks import delivery as webhook_delivery
from integrations.webhooks import services
from integrations.webhooks.signing import SignatureError, signature_header, signature_verify
from vetclinic.audit.models import AuditEntry

SECRET = "whsec_test-secret-0123456789"


class Receiver:
    """A PMS's webhook endpoint: checks each signature with signature_verify, records what came,
    and answers with the next of ``answers`` (the last one from then on)."""

    def __init__(self, secret=SECRET, answers=(200,), delay=0):
        self.secret, self.answers, self.delay, self.received = secret, list(answers), delay, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    verified = signature_verify(receiver.secret, self.headers["VetPACS-Signature"], body)
                except SignatureError as error:
                    verified = str(error)
                code = receiver.answers.pop(0) if len(receiver.answers) > 1 else receiver.answers[0]
                receiver.received.append(types.SimpleNamespace(
                    headers=self.headers, body=body, json=json.loads(body), verified=verified, answered=code
                ))  # fmt: skip
                time.sleep(receiver.delay)
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", "/elsewhere")
                self.end_headers()
                self.wfile.write(b"thanks" if code < 300 else b"oh no " * 500)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/vetpacs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def receivers_allowed(settings):
    """The receivers here listen on 127.0.0.1, which webhooks may reach only because an admin
    listed it (integrations/webhooks/addresses.py)."""
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]


@pytest.fixture
def receiver():
    made = []

    def make(**kwargs):
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def make_client(db, actor):
    """An API client and an HTTP client that calls with its key."""

    def make(name="Acme PMS", scopes=("webhooks:write", "patients:read", "orders:read", "studies:read")):
        client, key = api_client_create(actor=actor, name=name, scopes=list(scopes))
        http = APIClient()
        http.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return types.SimpleNamespace(client=client, http=http)

    return make


@pytest.fixture
def acme(db, make_client):
    return make_client()


@pytest.fixture
def it_admin(db):
    """The IT person: the integrations' admin pages are a superuser's."""
    from django.contrib.auth.models import User

    http = APIClient()
    http.force_login(User.objects.create_superuser("it", "it@clinic.example", "x"))
    return http


@pytest.fixture
def subscribe(actor):
    def make(
        client, url, events=("study.received", "study.completed", "order.status_changed"), secret=SECRET
    ):
        return services.subscription_create(
            actor=actor, client=client, url=url, events=list(events), secret=secret
        )[0]

    return make


@pytest.fixture
def queued(monkeypatch):
    """The tasks the webhook code queued, as (name, args); nothing reaches the broker."""
    sent = []
    monkeypatch.setattr(
        services,
        "current_app",
        types.SimpleNamespace(send_task=lambda name, args, **kw: sent.append((name, args))),
    )
    return sent


@pytest.fixture
def biscuit(make_owner, make_patient, actor):
    from patients.services import patient_upsert

    dog = make_patient("Biscuit", owner=make_owner("Hartley"))
    return patient_upsert(actor=actor, fields={}, patient=dog, external=("Acme PMS", "A-1001"))


@pytest.fixture
def publish(django_capture_on_commit_callbacks):
    """Publish an event as the task does; the sending is queued once it commits."""

    def publish(event="study.received", data=None):
        with django_capture_on_commit_callbacks(execute=True):
            return services.event_publish(event=event, data=data or {"order": {"id": 1}})

    return publish


# Signing -----------------------------------------------------------------------------------


def test_a_signature_verifies_with_its_secret_only():
    body = b'{"id":"1","event":"study.received"}'
    header = signature_header(SECRET, body)
    assert signature_verify(SECRET, header, body) is True
    for secret, sent, message in [("whsec_other-secret-000000", body, "No signature matches"),
                                  (SECRET, body + b" ", "No signature matches")]:  # fmt: skip
        with pytest.raises(SignatureError, match=message):
            signature_verify(secret, header, sent)


def test_an_old_or_malformed_signature_is_refused_and_any_v1_may_match():
    body = b"{}"
    old = signature_header(SECRET, body, timestamp=time.time() - 301)
    with pytest.raises(SignatureError, match="more than 300 s"):
        signature_verify(SECRET, old, body)
    assert signature_verify(SECRET, old, body, tolerance=None)
    for header in ["", "v1=abc", "t=12,v0=abc", "t=soon,v1=abc"]:
        with pytest.raises(SignatureError, match="Expected"):
            signature_verify(SECRET, header, body)
    t, v1 = signature_header(SECRET, body).split(",")
    assert signature_verify(SECRET, f"{t},v1=0000,{v1}", body)


# Sending -----------------------------------------------------------------------------------


def test_a_delivery_is_posted_signed_and_logged(acme, subscribe, receiver, queued, publish):
    pms = receiver()
    subscription = subscribe(acme.client, pms.url)
    [delivery] = publish(data={"order": {"id": 42, "status": "in_progress"}})
    assert queued == [("integrations.tasks.webhook_send", [delivery.pk, 0])]
    assert webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=0) == "delivered"
    [got] = pms.received
    assert got.verified is True
    assert got.json == {"id": got.json["id"], "event": "study.received", "created": got.json["created"],
                        "data": {"order": {"id": 42, "status": "in_progress"}}}  # fmt: skip
    assert (got.headers["VetPACS-Event"], got.headers["VetPACS-Delivery"]) == (
        "study.received",
        str(delivery.pk),
    )
    assert got.headers["Content-Type"] == "application/json"
    assert {"VetPACS-Signature", "VetPACS-Event", "VetPACS-Delivery"} <= set(
        got.headers.keys()
    )  # spelled as documented
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_codes, delivery.response_body) == (
        "delivered",
        1,
        [200],
        "thanks",
    )
    assert delivery.delivered_at and delivery.payload == got.json and delivery.subscription == subscription


def test_a_500_is_a_failed_attempt_retried_with_backoff_until_a_200(
    acme, subscribe, receiver, queued, publish
):
    pms = receiver(answers=(500, 500, 200))
    subscription = subscribe(acme.client, pms.url)
    [delivery] = publish()
    with pytest.raises(webhook_delivery.SendLater) as later:
        webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=0)
    assert (later.value.attempt, later.value.countdown) == (1, 2)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_codes, delivery.error) == (
        "pending",
        1,
        [500],
        "answered 500",
    )
    assert delivery.response_body.startswith("oh no") and len(delivery.response_body) == 1000
    with pytest.raises(webhook_delivery.SendLater) as later:
        webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=1)
    assert later.value.countdown == 4
    subscription.refresh_from_db()
    assert subscription.failure_streak == 2 and subscription.failing_since
    assert webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=2) == "delivered"
    delivery.refresh_from_db()
    subscription.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_codes, delivery.error) == (
        "delivered",
        3,
        [500, 500, 200],
        "",
    )
    assert (subscription.failure_streak, subscription.failing_since, subscription.active) == (0, None, True)
    assert [r.answered for r in pms.received] == [500, 500, 200] and all(
        r.verified is True for r in pms.received
    )
    assert len({r.headers["VetPACS-Delivery"] for r in pms.received}) == 1  # the same delivery each time


def test_no_answer_a_timeout_and_a_redirect_are_failed_attempts(
    acme, subscribe, receiver, queued, settings, publish
):
    settings.WEBHOOK_TIMEOUT = 1
    nobody = receiver()
    nobody.close()  # the port is free again: connection refused
    slow = receiver(delay=2)
    moved = receiver(answers=(302,))
    for pms in (nobody, slow, moved):
        subscribe(acme.client, pms.url)
    refused, timed_out, redirected = sorted(publish(), key=lambda d: d.subscription_id)
    for delivery in (refused, timed_out, redirected):
        with pytest.raises(webhook_delivery.SendLater):
            webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=0)
        delivery.refresh_from_db()
    assert refused.response_codes == [None] and "refused" in refused.error
    assert timed_out.response_codes == [None] and "timed out" in timed_out.error
    assert redirected.response_codes == [302] and redirected.error == "answered 302"
    assert [r.headers["VetPACS-Event"] for r in moved.received] == ["study.received"]  # not followed


def test_a_task_for_an_attempt_already_made_sends_nothing(acme, subscribe, receiver, queued, publish):
    pms = receiver()
    subscribe(acme.client, pms.url)
    [delivery] = publish()
    assert webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=0) == "delivered"
    assert webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=0) == "delivered"
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="pending")
    assert (
        webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=0) == "superseded"
    )  # a duplicate task
    assert len(pms.received) == 1


def test_a_delivery_is_given_up_after_the_last_attempt(acme, subscribe, receiver, queued, settings, publish):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    subscribe(acme.client, receiver(answers=(503,)).url)
    [delivery] = publish()
    with pytest.raises(webhook_delivery.SendLater):
        webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=0)
    assert webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=1) == "failed"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_codes, delivery.next_attempt_at) == (
        "failed",
        [503, 503],
        None,
    )


def test_the_attempts_are_the_settings_and_not_an_environment_variable_read_later(
    acme, subscribe, receiver, queued, publish, monkeypatch
):
    """WEBHOOK_* are settings (vetclinic/settings.py reads the environment once, at start):
    a variable set afterwards, as by another test or a shell, changes nothing."""
    monkeypatch.setenv("WEBHOOK_MAX_ATTEMPTS", "1")
    subscribe(acme.client, receiver(answers=(503,)).url)
    [delivery] = publish()
    with pytest.raises(webhook_delivery.SendLater):  # 35 attempts by default, not 1
        webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=0)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_codes) == ("pending", [503])


def rest_over():
    """As if the failing receiver's back-off were over: the attempts made so far were made an
    hour ago, so a delivery held back behind them is tried (webhook_delivery._held_back)."""
    for delivery in WebhookDelivery.objects.exclude(last_attempt_at=None):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            last_attempt_at=delivery.last_attempt_at - timedelta(hours=1)
        )


def test_deliveries_to_a_failing_receiver_wait_behind_one_attempt_and_go_once_it_answers(
    acme, subscribe, receiver, queued, publish
):
    pms = receiver(answers=(500, 200))
    subscribe(acme.client, pms.url)
    first, second, third = publish()[0], publish()[0], publish()[0]
    with pytest.raises(webhook_delivery.SendLater):
        webhook_delivery.delivery_send(delivery_id=first.pk, attempt=0)
    queued.clear()
    assert (
        webhook_delivery.delivery_send(delivery_id=second.pk, attempt=0) == "held"
    )  # not sent: the receiver rests
    assert webhook_delivery.delivery_send(delivery_id=third.pk, attempt=0) == "held"
    held = WebhookDelivery.objects.filter(pk__in=[second.pk, third.pk])
    assert [(d.status, d.attempts) for d in held] == [("pending", 0), ("pending", 0)]
    assert all(d.next_attempt_at > first.created for d in held)
    assert len(pms.received) == 1 and queued == []
    # The first delivery's retry gets through: the held ones are queued at once, each for its first attempt.
    assert webhook_delivery.delivery_send(delivery_id=first.pk, attempt=1) == "delivered"
    assert sorted(queued) == [
        ("integrations.tasks.webhook_send", [second.pk, 0]),
        ("integrations.tasks.webhook_send", [third.pk, 0]),
    ]
    assert webhook_delivery.delivery_send(delivery_id=second.pk, attempt=0) == "delivered"
    assert len(pms.received) == 3


def test_the_sweep_sends_one_held_delivery_per_failing_receiver_once_its_rest_is_over(
    acme, subscribe, receiver, queued, publish
):
    subscribe(acme.client, receiver(answers=(500,)).url)
    first, second, third = publish()[0], publish()[0], publish()[0]
    with pytest.raises(webhook_delivery.SendLater):
        webhook_delivery.delivery_send(delivery_id=first.pk, attempt=0)
    for delivery in (second, third):
        assert webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=0) == "held"
    queued.clear()
    WebhookDelivery.objects.filter(pk__in=[first.pk, second.pk, third.pk]).update(
        next_attempt_at=first.created
    )
    assert webhook_delivery.delivery_sweep() == 1 and queued == [
        ("integrations.tasks.webhook_send", [first.pk, 1])
    ]


def test_a_long_failure_streak_disables_the_subscription_and_the_client_sees_why(
    acme, subscribe, receiver, queued, settings, it_admin, publish
):
    settings.WEBHOOK_DISABLE_AFTER, settings.WEBHOOK_DISABLE_HOURS = 3, 0
    subscription = subscribe(acme.client, receiver(answers=(500,)).url)
    first, second = publish(), publish()
    for delivery, attempt in [(first[0], 0), (second[0], 0)]:
        rest_over()
        with pytest.raises(webhook_delivery.SendLater):
            webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=attempt)
    rest_over()
    assert (
        webhook_delivery.delivery_send(delivery_id=first[0].pk, attempt=1) == "disabled"
    )  # the third failure in a row
    subscription.refresh_from_db()
    assert (subscription.active, subscription.failure_streak) == (False, 3)
    assert subscription.disabled_at and subscription.disabled_reason.startswith(
        "Disabled after 3 failed attempts in a row since "
    )
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"disabled"}
    assert webhook_delivery.delivery_send(delivery_id=second[0].pk, attempt=1) == "disabled"
    assert publish() == []  # nothing more is logged for it
    body = acme.http.get(f"/api/v1/webhooks/{subscription.pk}").json()
    assert (body["active"], body["disabled_at"] is not None, body["disabled_reason"]) == (
        False,
        True,
        subscription.disabled_reason,
    )
    assert AuditEntry.objects.filter(
        action="disable", object_id=str(subscription.pk), actor="webhooks"
    ).exists()
    admin = it_admin
    page = admin.get(f"/admin/integrations/apiclient/{acme.client.pk}/change/").content.decode()
    assert subscription.disabled_reason in page and subscription.url in page
    listing = admin.get("/admin/integrations/apiclient/").content.decode()
    assert "1, 1 disabled" in listing


def test_failures_in_a_short_outage_do_not_disable(acme, subscribe, receiver, queued, settings, publish):
    settings.WEBHOOK_DISABLE_AFTER, settings.WEBHOOK_DISABLE_HOURS = 2, 24
    subscription = subscribe(acme.client, receiver(answers=(500,)).url)
    for delivery in publish() + publish() + publish():
        rest_over()
        with pytest.raises(webhook_delivery.SendLater):
            webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=0)
    subscription.refresh_from_db()
    assert (subscription.active, subscription.failure_streak, subscription.disabled_at) == (True, 3, None)


def test_the_sweep_queues_deliveries_whose_task_was_lost(acme, subscribe, queued, publish):
    from datetime import timedelta

    from django.utils.timezone import now

    subscribe(acme.client, "http://127.0.0.1:9/")
    late, _on_time = publish(), publish()
    WebhookDelivery.objects.filter(pk=late[0].pk).update(
        next_attempt_at=now() - timedelta(hours=1), attempts=3
    )
    queued.clear()
    assert webhook_delivery.delivery_sweep() == 1 and queued == [
        ("integrations.tasks.webhook_send", [late[0].pk, 3])
    ]


# Events ------------------------------------------------------------------------------------


def test_an_order_status_change_and_its_completion_become_webhooks(
    acme, make_client, subscribe, queued, biscuit, make_order, actor, django_capture_on_commit_callbacks
):
    subscribe(acme.client, "http://127.0.0.1:9/", events=["order.status_changed", "study.completed"])
    order = make_order(biscuit, placer_order_number="ORD-7")
    with django_capture_on_commit_callbacks(execute=True):
        orders.order_status_set(actor=actor, order=order, status="in_progress")
        orders.order_status_set(actor=actor, order=order, status="completed")
    events = [args for name, args in queued if name == "integrations.tasks.webhook_event"]
    assert [(e[0], e[3]) for e in events] == [
        ("order.status_changed", {"old": "scheduled", "new": "in_progress"}),
        ("order.status_changed", {"old": "in_progress", "new": "completed"}),
        ("study.completed", {}),
    ]
    deliveries = tasks.webhook_event(*events[0])
    body = WebhookDelivery.objects.get(pk=deliveries[0]).payload
    assert body["event"] == "order.status_changed" and body["created"].endswith("Z")
    assert body["data"] == {
        "order": {"id": order.pk, "accession_number": order.accession_number, "study_instance_uid": order.study_instance_uid,
                  "status": "in_progress", "procedure": "DX-THX2", "modality_type": "DX",
                  "scheduled_start": "2026-11-23T10:00:00Z", "placer_order_number": "ORD-7", "filler_order_number": "",
                  "patient": biscuit.pk, "url": f"http://127.0.0.1:8000/orders/{order.pk}/"},
        "previous_status": "scheduled",
        "patient": {"id": biscuit.pk, "patient_id": biscuit.patient_id, "name": "Biscuit",
                    "external_ids": [{"system": "Acme PMS", "value": "A-1001"}], "merged_into": None,
                    "url": f"http://127.0.0.1:8000/patients/{biscuit.pk}/"},
    }  # fmt: skip
    completed = WebhookDelivery.objects.get(pk=tasks.webhook_event(*events[2])[0]).payload["data"]
    assert (completed["order"]["status"], completed["study"]) == ("completed", None)


def test_a_patient_change_and_a_merge_become_webhooks(
    acme, subscribe, queued, make_patient, actor, dog, django_capture_on_commit_callbacks
):
    from patients.services import patient_merge, patient_upsert

    subscribe(acme.client, "http://127.0.0.1:9/", events=["patient.updated", "patient.merged"])
    with django_capture_on_commit_callbacks(execute=True):
        rex = patient_upsert(
            actor=actor, fields={"name": "Rex", "species": dog}, external=("Acme PMS", "A-7")
        )
        patient_upsert(
            actor=actor, fields={"name": "Rex"}, external=("Acme PMS", "A-7")
        )  # no change: no event
        patient_upsert(actor=actor, fields={"microchip": "985112345678901"}, patient=rex)
        duplicate = make_patient("Rex")
        patient_merge(actor=actor, source=duplicate, target=rex)
    events = [args for name, args in queued if name == "integrations.tasks.webhook_event"]
    assert [(e[0], e[2], e[3]) for e in events] == [
        ("patient.updated", rex.pk, {"changed": ["name", "species", "external_ids"]}),
        ("patient.updated", rex.pk, {"changed": ["microchip"]}),
        ("patient.updated", duplicate.pk, {"changed": ["name", "species"]}),
        ("patient.merged", duplicate.pk, {}),
    ]
    updated = WebhookDelivery.objects.get(pk=tasks.webhook_event(*events[1])[0]).payload["data"]
    assert updated["changed"] == ["microchip"] and updated["patient"]["external_ids"] == [
        {"system": "Acme PMS", "value": "A-7"}
    ]
    merged = WebhookDelivery.objects.get(pk=tasks.webhook_event(*events[3])[0]).payload["data"]
    assert (merged["patient"]["id"], merged["patient"]["merged_into"]) == (duplicate.pk, rex.pk)
    assert (merged["merged_into"]["id"], merged["merged_into"]["patient_id"]) == (rex.pk, rex.patient_id)


def test_images_arriving_are_study_received_with_the_study(
    acme, subscribe, queued, biscuit, make_order, actor, publish
):
    from imaging.models import Study

    subscribe(acme.client, "http://127.0.0.1:9/", events=["study.received"])
    order = make_order(biscuit)
    study = Study.objects.create(study_instance_uid=order.study_instance_uid, patient=biscuit, order=order,
                                 accession_number=order.accession_number, link="order")  # fmt: skip
    [delivery] = services.object_event_publish(
        event="study.received", kind="order", pk=order.pk, details={}, created=None
    )
    assert delivery.payload["data"]["study"] == {
        "id": study.pk, "study_instance_uid": order.study_instance_uid, "accession_number": order.accession_number,
        "study_date": None, "order": order.pk, "patient": biscuit.pk,
        "viewer_url": f"http://127.0.0.1:8000/studies/{study.pk}/",
    }  # fmt: skip


def test_nobody_subscribed_means_no_task_and_hl7_hears_only_its_own_events(
    acme, queued, biscuit, make_order, actor, django_capture_on_commit_callbacks, monkeypatch
):
    from integrations import apps

    hl7 = []
    monkeypatch.setattr("celery.current_app.send_task", lambda name, args, **kw: hl7.append((name, args)))
    HL7Endpoint.objects.create(name="PMS", host="127.0.0.1", port=9)
    order = make_order(biscuit)
    with django_capture_on_commit_callbacks(execute=True):
        orders.order_status_set(actor=actor, order=order, status="completed")
    assert queued == []
    assert hl7 == [("integrations.tasks.hl7_order_event", [order.pk, "order_completed"])]
    assert "order_status_changed" not in apps.HL7_EVENTS and not HL7Message.objects.exists()


def test_an_event_goes_only_to_subscriptions_that_want_it_and_may_read_it(
    make_client, subscribe, queued, publish
):
    wants = make_client("Wants")
    other = make_client("Other")
    paused = make_client("Paused")
    blind = make_client("Blind", scopes=["webhooks:write", "studies:read"])
    subscribe(wants.client, "http://127.0.0.1:9/a", events=["study.received"])
    subscribe(other.client, "http://127.0.0.1:9/b", events=["order.status_changed"])
    WebhookSubscription.objects.filter(
        pk=subscribe(paused.client, "http://127.0.0.1:9/c", events=["study.received"]).pk
    ).update(active=False)
    subscribe(blind.client, "http://127.0.0.1:9/d", events=["study.received"])
    ApiClient.objects.filter(pk=blind.client.pk).update(
        scopes=["webhooks:write"]
    )  # its scope was taken away since
    [delivery] = publish("study.received")
    assert delivery.subscription.client == wants.client


# The API -----------------------------------------------------------------------------------


def test_subscribing_shows_the_secret_once(acme):
    response = acme.http.post("/api/v1/webhooks", {"url": "https://pms.example/hooks", "events": ["study.received"],
                                                   "description": "Imaging"}, format="json")  # fmt: skip
    assert response.status_code == 201, response.json()
    body = response.json()
    subscription = WebhookSubscription.objects.get()
    assert body == {
        "id": subscription.pk, "url": "https://pms.example/hooks", "events": ["study.received"], "description": "Imaging",
        "active": True, "secret": subscription.secret, "failure_streak": 0, "failing_since": None, "disabled_at": None,
        "disabled_reason": "", "created": body["created"], "updated": body["updated"],
    }  # fmt: skip
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    again = acme.http.get(f"/api/v1/webhooks/{subscription.pk}").json()
    assert "secret" not in again and again == {k: v for k, v in body.items() if k != "secret"}
    assert acme.http.get("/api/v1/webhooks").json()["results"] == [again]
    assert AuditEntry.objects.filter(
        action="create", object_id=str(subscription.pk), channel="api", actor="Acme PMS"
    ).exists()


def test_a_client_may_bring_its_own_secret_and_change_or_delete_its_subscription(acme):
    created = acme.http.post("/api/v1/webhooks", {"url": "http://pms.local/h", "events": ["study.received"],
                                                  "secret": "my-own-secret-of-24-chars"}, format="json").json()  # fmt: skip
    assert created["secret"] == "my-own-secret-of-24-chars"
    url = f"/api/v1/webhooks/{created['id']}"
    changed = acme.http.patch(
        url, {"events": ["study.received", "patient.merged"], "active": False}, format="json"
    )
    assert changed.status_code == 200 and (changed.json()["events"], changed.json()["active"]) == (
        ["study.received", "patient.merged"],
        False,
    )
    assert acme.http.patch(url, {"secret": "a-new-secret-for-rotation"}, format="json").status_code == 200
    assert WebhookSubscription.objects.get().secret == "a-new-secret-for-rotation"
    assert acme.http.put(url, created, format="json").status_code == 405
    assert acme.http.delete(url).status_code == 204 and not WebhookSubscription.objects.exists()


@pytest.mark.parametrize("body, field, message", [
    ({"url": "ftp://pms.example/h", "events": ["study.received"]}, "url", "http:// or https://"),
    ({"url": "https://pms.example/h", "events": ["study.deleted"]}, "events", "not a valid choice"),
    ({"url": "https://pms.example/h", "events": []}, "events", "may not be empty"),
    ({"url": "https://pms.example/h", "events": ["report.finalized"]}, "events", "needs the reports:read scope"),
    ({"url": "https://pms.example/h", "events": ["study.received"], "secret": "short"}, "secret", "16"),
])  # fmt: skip
def test_bad_subscriptions_get_400_naming_the_field(acme, body, field, message):
    response = acme.http.post("/api/v1/webhooks", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    assert (
        message in str(response.json()["error"]["fields"][field]) and not WebhookSubscription.objects.exists()
    )


def test_a_client_sees_only_its_own_subscriptions_and_deliveries(
    acme, make_client, subscribe, queued, publish
):
    other = make_client("Other PMS")
    mine = subscribe(acme.client, "http://127.0.0.1:9/mine")
    theirs = subscribe(other.client, "http://127.0.0.1:9/theirs")
    deliveries = {d.subscription_id: d for d in publish()}
    assert [s["id"] for s in acme.http.get("/api/v1/webhooks").json()["results"]] == [mine.pk]
    assert [d["id"] for d in acme.http.get("/api/v1/webhooks/deliveries").json()["results"]] == [
        deliveries[mine.pk].pk
    ]
    for url in [f"/api/v1/webhooks/{theirs.pk}", f"/api/v1/webhooks/deliveries/{deliveries[theirs.pk].pk}"]:
        response = acme.http.get(url)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert (
        acme.http.patch(f"/api/v1/webhooks/{theirs.pk}", {"active": False}, format="json").status_code == 404
    )
    assert acme.http.delete(f"/api/v1/webhooks/{theirs.pk}").status_code == 404
    assert (
        acme.http.post(f"/api/v1/webhooks/deliveries/{deliveries[theirs.pk].pk}/redeliver").status_code == 404
    )
    theirs.refresh_from_db()
    assert theirs.active


def test_scopes_decide_who_reads_and_who_writes_webhooks(make_client, staff, it_admin):
    reader = make_client("Reader", scopes=["webhooks:read", "studies:read"])
    assert reader.http.get("/api/v1/webhooks").status_code == 200
    assert reader.http.get("/api/v1/webhooks/deliveries").status_code == 200
    refused = reader.http.post(
        "/api/v1/webhooks", {"url": "https://x.example", "events": ["study.received"]}, format="json"
    )
    assert (refused.status_code, refused.json()) == (
        403,
        {"error": {"code": "permission_denied", "message": "This API client has no 'webhooks:write' scope."}},
    )
    assert reader.http.post("/api/v1/webhooks/deliveries/1/redeliver").status_code == 403
    outsider = make_client("Outsider", scopes=["studies:read"])
    assert (
        outsider.http.get("/api/v1/webhooks").json()["error"]["message"]
        == "This API client has no 'webhooks:read' scope."
    )
    assert APIClient().get("/api/v1/webhooks").status_code == 401
    front_desk = APIClient()
    front_desk.force_login(staff["front desk"])
    assert front_desk.get("/api/v1/webhooks").status_code == 403
    response = it_admin.get("/api/v1/webhooks")
    assert response.status_code == 403 and "belong to an API client" in response.json()["error"]["message"]


def test_deliveries_are_listed_newest_first_filtered_and_paged(acme, subscribe, queued, publish):
    subscription = subscribe(acme.client, "http://127.0.0.1:9/")
    received, status_changed, completed = (
        publish("study.received"),
        publish("order.status_changed"),
        publish("study.completed"),
    )
    WebhookDelivery.objects.filter(pk=completed[0].pk).update(status="delivered")
    listing = acme.http.get("/api/v1/webhooks/deliveries", {"page_size": 2}).json()
    assert [d["event"] for d in listing["results"]] == ["study.completed", "order.status_changed"]
    rest = acme.http.get(listing["next"]).json()
    assert [d["id"] for d in rest["results"]] == [received[0].pk] and rest["next"] is None
    assert [
        d["id"] for d in acme.http.get("/api/v1/webhooks/deliveries", {"status": "pending"}).json()["results"]
    ] == [status_changed[0].pk, received[0].pk]
    assert [
        d["id"]
        for d in acme.http.get(
            "/api/v1/webhooks/deliveries", {"event": "study.received", "subscription": subscription.pk}
        ).json()["results"]
    ] == [received[0].pk]
    for name, value in [("status", "lost"), ("subscription", "9" * 30), ("subscription", "²")]:
        bad = acme.http.get("/api/v1/webhooks/deliveries", {name: value})
        assert bad.status_code == 400 and list(bad.json()["error"]["fields"]) == [name]
    one = acme.http.get(f"/api/v1/webhooks/deliveries/{received[0].pk}").json()
    assert one == {
        "id": received[0].pk, "subscription": subscription.pk, "event": "study.received", "status": "pending", "attempts": 0,
        "response_codes": [], "response_status": None, "response_body": "", "error": "",
        "next_attempt_at": one["next_attempt_at"], "last_attempt_at": None, "delivered_at": None,
        "created": one["created"], "payload": received[0].payload,
    }  # fmt: skip


def test_a_client_redelivers_and_turns_a_disabled_subscription_on_again(
    acme, subscribe, receiver, queued, settings, django_capture_on_commit_callbacks, publish
):
    settings.WEBHOOK_DISABLE_AFTER, settings.WEBHOOK_DISABLE_HOURS = 1, 0
    pms = receiver(answers=(500, 200))
    subscription = subscribe(acme.client, pms.url)
    [delivery] = publish()
    assert webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=0) == "disabled"
    url = f"/api/v1/webhooks/deliveries/{delivery.pk}/redeliver"
    refused = acme.http.post(url)
    assert (refused.status_code, refused.json()["error"]) == (
        409,
        {"code": "conflict", "message": "The subscription is disabled; turn it on again first."},
    )
    on = acme.http.patch(f"/api/v1/webhooks/{subscription.pk}", {"active": True}, format="json").json()
    assert (on["active"], on["disabled_at"], on["disabled_reason"], on["failure_streak"]) == (
        True,
        None,
        "",
        0,
    )
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = acme.http.post(url)
    assert response.status_code == 202 and (response.json()["status"], response.json()["attempts"]) == (
        "pending",
        1,
    )
    assert queued == [("integrations.tasks.webhook_send", [delivery.pk, 1])]
    assert webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=1) == "delivered"
    assert [r.answered for r in pms.received] == [500, 200]
    # A delivered one goes again too (the receiver lost it), under the same id.
    with django_capture_on_commit_callbacks(execute=True):
        assert acme.http.post(url).status_code == 202
    assert webhook_delivery.delivery_send(delivery_id=delivery.pk, attempt=2) == "delivered"
    assert [r.headers["VetPACS-Delivery"] for r in pms.received] == [str(delivery.pk)] * 3
    assert (
        AuditEntry.objects.filter(action="redeliver", object_id=str(delivery.pk), channel="api").count() == 2
    )


def test_an_admin_redelivers_from_the_delivery_log(
    acme, subscribe, queued, it_admin, django_capture_on_commit_callbacks, publish
):
    subscribe(acme.client, "http://127.0.0.1:9/")
    [delivery] = publish()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=35)
    with django_capture_on_commit_callbacks(execute=True):
        response = it_admin.post(
            "/admin/integrations/webhookdelivery/", {"action": "redeliver", "_selected_action": [delivery.pk]}
        )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == "pending" and ("integrations.tasks.webhook_send", [delivery.pk, 35]) in queued
