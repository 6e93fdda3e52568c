"""Webhooks end to end: a client subscribes over the API, an order changes, and a real Celery
worker on the configured broker POSTs to a real HTTP receiver on a local socket, which checks
each signature; retried after a 500, disabled after a failure streak, redelivered on request."""

import pytest
from rest_framework.test import APIClient

from imaging.orders import services as orders
from integrations.api.clients import api_client_create
from integrations.models import WebhookDelivery, WebhookSubscription
from tests.conftest import wait_for
from tests.test_webhooks import Receiver


@pytest.fixture(autouse=True)
def receivers_allowed(process_env, settings):
    """The receivers listen on 127.0.0.1: an admin lists it for the API (subscribing) and for
    the worker (sending)."""
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    process_env["WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"


def _client(actor):
    _, key = api_client_create(
        actor=actor, name="Acme PMS", scopes=["webhooks:write", "orders:read", "studies:read"]
    )
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return http


def _subscribe(http, url, events):
    response = http.post("/api/v1/webhooks", {"url": url, "events": events}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_a_worker_delivers_an_order_completing_retrying_after_a_500(
    process_env, reference_data, make_owner, make_patient, make_order, actor, celery_worker
):
    http = _client(actor)
    pms = Receiver(answers=(500, 200))
    try:
        created = _subscribe(http, pms.url, ["order.status_changed", "study.completed"])
        pms.secret = created["secret"]  # the receiver checks with the secret it was shown
        order = make_order(make_patient("Rex", owner=make_owner("Okafor")))
        orders.order_status_set(
            actor=actor, order=order, status="completed"
        )  # committed: the events are queued
        wait_for(lambda: WebhookDelivery.objects.count() == 2
                 and all(d.status == "delivered" for d in WebhookDelivery.objects.all()),
                 timeout=60, message="both deliveries")  # fmt: skip
    finally:
        pms.close()
    assert len(pms.received) == 3 and all(r.verified is True for r in pms.received)
    assert sorted(d.response_codes for d in WebhookDelivery.objects.all()) == [[200], [500, 200]]
    bodies = {r.json["event"]: r.json for r in pms.received}
    assert bodies["order.status_changed"]["data"]["previous_status"] == "scheduled"
    assert bodies["order.status_changed"]["data"]["order"]["status"] == "completed"
    assert bodies["study.completed"]["data"]["order"]["accession_number"] == order.accession_number
    listed = http.get("/api/v1/webhooks/deliveries", {"status": "delivered"}).json()["results"]
    assert sorted(d["attempts"] for d in listed) == [1, 2]


def test_a_worker_disables_a_failing_subscription_and_delivers_once_it_is_on_again(
    process_env, reference_data, make_owner, make_patient, make_order, actor, celery_worker_start
):
    process_env.update(WEBHOOK_DISABLE_AFTER="2", WEBHOOK_DISABLE_HOURS="0")  # the worker's settings
    celery_worker_start()
    http = _client(actor)
    pms = Receiver(answers=(500,))
    try:
        created = _subscribe(http, pms.url, ["order.status_changed"])
        pms.secret = created["secret"]
        order = make_order(make_patient("Rex", owner=make_owner("Okafor")))
        orders.order_arrive(actor=actor, order=order)
        wait_for(
            lambda: WebhookSubscription.objects.get().disabled_at,
            timeout=60,
            message="the subscription disabled",
        )
        shown = http.get(f"/api/v1/webhooks/{created['id']}").json()
        assert (shown["active"], shown["failure_streak"]) == (False, 2)
        assert shown["disabled_reason"].startswith("Disabled after 2 failed attempts in a row")
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.response_codes) == ("disabled", [500, 500])
        pms.answers = [200]  # the PMS is fixed; the client turns the subscription on and asks again
        assert (
            http.patch(f"/api/v1/webhooks/{created['id']}", {"active": True}, format="json").status_code
            == 200
        )
        assert http.post(f"/api/v1/webhooks/deliveries/{delivery.pk}/redeliver").status_code == 202
        wait_for(
            lambda: WebhookDelivery.objects.get().status == "delivered", timeout=60, message="the redelivery"
        )
    finally:
        pms.close()
    assert WebhookDelivery.objects.get().response_codes == [500, 500, 200]
    assert (
        all(r.verified is True for r in pms.received)
        and pms.received[-1].json["event"] == "order.status_changed"
    )


def test_a_receiver_that_hangs_does_not_delay_the_deliveries_to_a_healthy_one(
    process_env, reference_data, actor, celery_worker_start
):
    """A burst of events for two subscriptions, one of whose receivers hangs past the timeout.
    Once its first attempt has failed, its other deliveries are held back instead of each
    costing the worker a timeout: the healthy receiver has all of its own while the hanging one
    has seen a first attempt and perhaps a retry or two, not one request per event."""
    import time

    from integrations.webhooks.services import event_publish, subscription_create

    process_env["WEBHOOK_TIMEOUT"] = "1"
    worker = celery_worker_start()
    wait_for(lambda: "ready." in worker.log.read_text(), message="the worker to start")
    client, _ = api_client_create(actor=actor, name="Acme PMS", scopes=["webhooks:write", "orders:read"])
    healthy, hanging = Receiver(), Receiver(delay=3)
    try:
        for receiver in (hanging, healthy):
            _, receiver.secret = subscription_create(actor=actor, client=client, url=receiver.url,
                                                     events=["order.status_changed"])  # fmt: skip
        started = time.monotonic()
        for n in range(30):
            event_publish(event="order.status_changed", data={"order": {"id": n}})  # committed: queued
        wait_for(
            lambda: len(healthy.received) == 30, timeout=120, message="the healthy receiver's 30 deliveries"
        )
        print(
            f"30 deliveries to the healthy receiver in {time.monotonic() - started:.1f} s; "
            f"the hanging one got {len(hanging.received)} requests meanwhile"
        )
        assert len(hanging.received) <= 4
        wait_for(lambda: WebhookDelivery.objects.filter(subscription__url=healthy.url, status="delivered").count() == 30,
                 message="the healthy deliveries recorded")  # fmt: skip
        held = WebhookDelivery.objects.filter(subscription__url=hanging.url, status="pending", attempts=0)
        assert held.count() >= 25 and all(d.next_attempt_at for d in held)
    finally:
        healthy.close()
        hanging.close()
