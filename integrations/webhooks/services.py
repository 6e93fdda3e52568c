"""Webhooks, subscribing: an API client's subscriptions, and the events they hear.

``event_publish`` logs one pending delivery per subscription that wants the event and queues
its sending; integrations/webhooks/delivery.py sends it (signed, retried with backoff) and
disables a subscription whose attempts have all failed for a long time
(``WEBHOOK_DISABLE_AFTER`` failures in a row over at least ``WEBHOOK_DISABLE_HOURS``), with the
reason, until its client turns it on again.
"""

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.timezone import now
from rest_framework.fields import DateTimeField

from imaging.orders import events as order_events
from integrations.models import ApiClient, WebhookDelivery, WebhookSubscription
from integrations.webhooks import payloads
from integrations.webhooks.addresses import AddressRefused, url_host_check
from integrations.webhooks.signing import secret_new
from patients import events as patient_events
from vetclinic.audit.services import Actor, audit_record

log = logging.getLogger("integrations.webhooks")
Status = WebhookDelivery.Status
SEND_TASK = "integrations.tasks.webhook_send"
EVENT_TASK = "integrations.tasks.webhook_event"
EVENTS = [name for name, _ in WebhookSubscription.EVENTS]
# The scope a client needs to hear an event: it says no more than the client may read.
RESOURCE = {"patient.updated": "patients", "patient.merged": "patients", "order.status_changed": "orders",
            "study.received": "studies", "study.completed": "studies", "report.finalized": "reports",
            "study.sent": "sends",
            "share.opened": "studies", "consult.requested": "studies", "consult.reported": "studies"}  # fmt: skip
# Our own events, as webhooks call them.
ORDER_EVENTS = {
    order_events.ORDER_STATUS_CHANGED: "order.status_changed",
    order_events.STUDY_RECEIVED: "study.received",
    order_events.ORDER_COMPLETED: "study.completed",
    order_events.REPORT_FINAL: "report.finalized",
}
PATIENT_EVENTS = {
    patient_events.PATIENT_UPDATED: "patient.updated",
    patient_events.PATIENT_MERGED: "patient.merged",
}
SYSTEM = Actor.system("webhooks")


# Subscriptions -----------------------------------------------------------------------------


def _check(client: ApiClient, fields: dict[str, Any]) -> None:
    url = fields.get("url")
    if url is not None and not url.lower().startswith(("http://", "https://")):
        raise ValidationError({"url": "Webhooks are sent to an http:// or https:// URL."})
    if url is not None:
        try:
            parts = urlsplit(url)
            url_host_check(parts.hostname, parts.port or (443 if parts.scheme.lower() == "https" else 80))
        except ValueError:
            raise ValidationError({"url": "The URL's port is not a number from 0 to 65535."}) from None
        except AddressRefused as refused:
            raise ValidationError({"url": str(refused)}) from None
    events = fields.get("events")
    if events is not None:
        unknown = sorted(set(events) - set(EVENTS))
        if unknown or not events:
            raise ValidationError({"events": f"Choose one or more of {', '.join(EVENTS)}."})
        missing = sorted(
            {f"{RESOURCE[e]}:read" for e in events if not client.allows(RESOURCE[e], write=False)}
        )
        if missing:
            message = f"This API client needs the {', '.join(missing)} scope to hear these events."
            raise ValidationError({"events": message})
    secret = fields.get("secret")
    if secret is not None and not 16 <= len(secret) <= 128:
        raise ValidationError({"secret": "A secret has 16 to 128 characters."})


@transaction.atomic
def subscription_create(
    *,
    actor: Actor,
    client: ApiClient,
    url: str,
    events: Iterable[str],
    secret: str | None = None,
    description: str = "",
    active: bool = True,
) -> tuple[WebhookSubscription, str]:
    """Returns (subscription, secret): a secret the client did not give is made here, and the
    client sees it in this answer only."""
    _check(client, {"url": url, "events": events, "secret": secret})
    secret = secret or secret_new()
    subscription = WebhookSubscription.objects.create(
        client=client, url=url, secret=secret, events=list(dict.fromkeys(events)), description=description,
        active=active,
    )  # fmt: skip
    audit_record(actor=actor, instance=subscription, action="create",
                 changes={"url": [None, url], "events": [None, " ".join(subscription.events)]})  # fmt: skip
    return subscription, secret


@transaction.atomic
def subscription_update(
    *, actor: Actor, subscription: WebhookSubscription, fields: dict[str, Any]
) -> WebhookSubscription:
    """Change url, events, description, secret or active. Turning a disabled subscription on
    again clears why it was disabled and starts its failure count afresh."""
    unknown = set(fields) - {"url", "events", "description", "secret", "active"}
    if unknown:
        raise ValueError(f"unknown subscription fields: {sorted(unknown)}")
    subscription = (
        WebhookSubscription.objects.select_for_update().select_related("client").get(pk=subscription.pk)
    )
    _check(subscription.client, fields)
    changes: dict[str, list[str | None]] = {}
    for name, value in fields.items():
        if name == "events":
            value = list(dict.fromkeys(value))
        old = getattr(subscription, name)
        if old != value:
            changes[name] = ["…", "…"] if name == "secret" else [str(old), str(value)]
            setattr(subscription, name, value)
    if fields.get("active") and "active" in changes:  # on again: a fresh start
        subscription.disabled_at, subscription.disabled_reason = None, ""
        subscription.failure_streak, subscription.failing_since = 0, None
    if changes:
        subscription.updated = now()
        subscription.save()
        audit_record(actor=actor, instance=subscription, action="update", changes=changes)
    return subscription


@transaction.atomic
def subscription_delete(*, actor: Actor, subscription: WebhookSubscription) -> None:
    audit_record(
        actor=actor, instance=subscription, action="delete", changes={"url": [subscription.url, None]}
    )
    subscription.delete()


@transaction.atomic
def subscription_disable(*, subscription: WebhookSubscription, reason: str) -> bool:
    """Stop sending: the subscription is off, its waiting deliveries are marked disabled (a
    redelivery sends one once the client turns the subscription on again)."""
    updated = WebhookSubscription.objects.filter(pk=subscription.pk, active=True).update(
        active=False, disabled_at=now(), disabled_reason=reason[:200], updated=now()
    )
    if not updated:
        return False
    WebhookDelivery.objects.filter(subscription=subscription, status=Status.PENDING).update(
        status=Status.DISABLED, next_attempt_at=None
    )
    changes: dict[str, list[str | None]] = {"active": ["True", "False"], "reason": [None, reason]}
    audit_record(actor=SYSTEM, instance=subscription, action="disable", changes=changes)
    log.warning("webhook subscription %s (%s) disabled: %s", subscription.pk, subscription.url, reason)
    return True


# Events ------------------------------------------------------------------------------------


def events_wanted() -> set[str]:
    """The events some active subscription wants: one small query, so that a change nobody
    subscribed to costs no task."""
    subscriptions = WebhookSubscription.objects.filter(active=True, client__active=True)
    return {event for events in subscriptions.values_list("events", flat=True) for event in events}


def event_publish(
    *, event: str, data: payloads.Data, created: datetime | None = None
) -> list[WebhookDelivery]:
    """Log a pending delivery of ``event`` to each subscription that wants it (and whose client
    may read what it says), and queue the sending. All get the same body and event id."""
    when = DateTimeField().to_representation(created or now())
    payload = {"id": str(uuid.uuid4()), "event": event, "created": when, "data": data}
    subscriptions = WebhookSubscription.objects.filter(active=True, client__active=True).select_related(
        "client"
    )
    with transaction.atomic():
        deliveries = [
            WebhookDelivery.objects.create(
                subscription=s, event=event, payload=payload, next_attempt_at=now()
            )
            for s in subscriptions
            if s.wants(event) and s.client.allows(RESOURCE[event], write=False)
        ]

        def queue() -> None:
            for delivery in deliveries:
                delivery_queue(delivery.pk, 0)

        transaction.on_commit(queue)
    return deliveries


def delivery_queue(delivery_id: int, attempt: int, countdown: int = 0) -> None:
    """Queue attempt number ``attempt + 1`` of a delivery (integrations/webhooks/delivery.py)."""
    try:
        current_app.send_task(SEND_TASK, args=[delivery_id, attempt], countdown=countdown)
    except Exception:  # logged as pending: delivery_sweep or a redelivery sends it
        log.exception("could not queue webhook delivery %s", delivery_id)


def order_event_queue(order_id: int, event: str, **details: Any) -> None:
    """imaging/orders/events.py subscriber, after the commit: queue the webhook event, built in a worker
    rather than in the request or the DICOM association that changed the order."""
    _event_queue("order", order_id, ORDER_EVENTS.get(event), details)


def patient_event_queue(patient_id: int, event: str, **details: Any) -> None:
    """patients/events.py subscriber, after the commit."""
    _event_queue("patient", patient_id, PATIENT_EVENTS.get(event), details)


def _event_queue(kind: str, pk: int, event: str | None, details: dict[str, Any]) -> None:
    try:
        if event is None or event not in events_wanted():
            return
        current_app.send_task(EVENT_TASK, args=[event, kind, pk, details, now().isoformat()])
    except Exception:  # the change is committed and stays so; only this notice is lost
        log.exception("could not queue webhook event %s for %s %s", event, kind, pk)


def object_event_publish(
    *, event: str, kind: str, pk: int, details: dict[str, Any], created: datetime | None
) -> list[WebhookDelivery]:
    """The task's half: build the body from the record as it is now (and the details of the
    moment it changed) and publish it."""
    # Any: an order or an animal, as ``kind`` says; each event's builder takes the one it is about.
    record: Any = payloads.order_for(pk) if kind == "order" else payloads.patient_for(pk)
    if record is None:
        return []
    data = {
        "patient.updated": lambda: payloads.patient_updated(record, details.get("changed", ())),
        "patient.merged": lambda: payloads.patient_merged(record),
        "order.status_changed": lambda: payloads.order_status_changed(
            record, details.get("old"), details.get("new")
        ),
        "study.received": lambda: payloads.study_event(record),
        "study.completed": lambda: payloads.study_event(record, status="completed"),
        "report.finalized": lambda: payloads.report_finalized(record, details.get("report")),
    }[event]()
    return event_publish(event=event, data=data, created=created)
