"""Webhooks, delivering: each delivery sent, signed and retried.

``delivery_send`` makes one attempt (a POST, signed) and records the answer. The Celery task
(integrations/tasks.py) retries with exponential backoff until a 2xx, at most
``WEBHOOK_MAX_ATTEMPTS`` times. A subscription whose attempts have all failed for a long time
(``WEBHOOK_DISABLE_AFTER`` failures in a row over at least ``WEBHOOK_DISABLE_HOURS``) is
disabled, with the reason, until its client turns it on again.

Each attempt of a delivery is numbered: a task names the attempt it is for, so two tasks for
the same delivery (a retry and a manual redelivery, or a broker delivering a task twice) never
both send; a receiver may still see a delivery twice and tells by ``VetPACS-Delivery``.
"""

import json
from datetime import timedelta
from http.client import HTTPException
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils.timezone import now
from rest_framework.fields import DateTimeField

from integrations.models import WebhookDelivery, WebhookSubscription
from integrations.webhooks.addresses import pinned_connection
from integrations.webhooks.services import Status, delivery_queue, log, subscription_disable
from integrations.webhooks.signing import HEADER, signature_header
from vetclinic.audit.services import Actor, audit_record

BACKOFF_MAX = 3600  # seconds between attempts, at most
BODY_KEPT = 1000  # characters of the receiver's answer kept in the log


class SendLater(Exception):
    """The attempt failed; try again in ``countdown`` seconds as attempt number ``attempt``."""

    def __init__(self, message: str, *, attempt: int, countdown: int) -> None:
        super().__init__(message)
        self.attempt, self.countdown = attempt, countdown


def request_body(delivery: WebhookDelivery) -> bytes:
    return json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()


def _post(delivery: WebhookDelivery, body: bytes) -> tuple[int | None, str, str]:
    """(HTTP status or None, the answer's start, error text). http.client rather than urllib:
    the headers go out spelled as documented, and a redirect is an answer, not followed."""
    subscription = delivery.subscription
    url = urlsplit(subscription.url)
    headers = {
        "Content-Type": "application/json", "User-Agent": "VetPACS-Webhooks/1", "VetPACS-Event": delivery.event,
        "VetPACS-Delivery": str(delivery.pk), HEADER: signature_header(subscription.secret, body),
    }  # fmt: skip
    timeout = settings.WEBHOOK_TIMEOUT
    try:
        # To an address checked against WEBHOOK_ALLOWED_HOSTS (AddressRefused is an OSError).
        connection = pinned_connection(url, timeout)
        try:
            connection.request(
                "POST", (url.path or "/") + (f"?{url.query}" if url.query else ""), body, headers
            )
            response = connection.getresponse()
            text = response.read(BODY_KEPT).decode(errors="replace")
        finally:
            connection.close()
    except (OSError, HTTPException, ValueError) as error:  # refused, timed out, TLS, a garbled answer
        return (
            None,
            "",
            f"not delivered: {error}" if str(error) else f"not delivered: {error.__class__.__name__}",
        )
    return response.status, text, "" if 200 <= response.status < 300 else f"answered {response.status}"


def backoff(attempts: int) -> int:
    """Seconds before the next attempt after ``attempts`` failed ones: 2, 4, 8, … one hour."""
    seconds: int = 2 ** min(attempts, 12)
    return min(seconds, BACKOFF_MAX)


def delivery_send(*, delivery_id: int, attempt: int | None = None) -> str | None:
    """Make attempt number ``attempt + 1`` of a delivery (``attempt``: how many it had when the
    task was queued; None: whatever it has). Returns the delivery's status, or raises SendLater."""
    delivery = WebhookDelivery.objects.select_related("subscription__client").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != Status.PENDING:
        return delivery.status if delivery else None
    if attempt is not None and delivery.attempts != attempt:
        return "superseded"  # another task made that attempt; its retry carries on
    subscription = delivery.subscription
    waiting = WebhookDelivery.objects.filter(pk=delivery.pk, status=Status.PENDING)
    if not (subscription.active and subscription.client.active):
        waiting.update(status=Status.DISABLED, next_attempt_at=None)
        return Status.DISABLED
    if subscription.failure_streak and _held_back(delivery, subscription):
        return "held"
    claimed = waiting.filter(attempts=delivery.attempts).update(
        attempts=delivery.attempts + 1, last_attempt_at=now()
    )
    if not claimed:
        return "superseded"
    delivery.attempts += 1
    code, text, error = _post(delivery, request_body(delivery))
    codes = (delivery.response_codes + [code])[-100:]
    done = code is not None and 200 <= code < 300
    if done:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=Status.DELIVERED, delivered_at=now(), next_attempt_at=None, response_codes=codes,
            response_body=text, error="",
        )  # fmt: skip
        streak = WebhookSubscription.objects.filter(pk=subscription.pk, failure_streak__gt=0)
        if streak.update(failure_streak=0, failing_since=None):
            _held_release(subscription, delivery)
        return Status.DELIVERED
    final = delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS
    countdown = backoff(delivery.attempts)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        response_codes=codes, response_body=text, error=error[:500],
        status=Status.FAILED if final else Status.PENDING,
        next_attempt_at=None if final else now() + timedelta(seconds=countdown),
    )  # fmt: skip
    if _streak_add(subscription):
        return Status.DISABLED
    if final:
        log.warning("webhook delivery %s to %s given up after %s attempts: %s",
                    delivery.pk, subscription.url, delivery.attempts, error)  # fmt: skip
        return Status.FAILED
    raise SendLater(error, attempt=delivery.attempts, countdown=countdown)


# A receiver that fails (refuses, times out, answers 5xx) gets one attempt at a time: the
# deliveries queued behind it are held back instead of each spending a worker on it (up to
# WEBHOOK_TIMEOUT each for one that hangs), so the other subscriptions' deliveries are not
# delayed behind them. A held delivery keeps its attempts; the failing delivery's own retries
# probe the receiver, and once one gets through, the held ones are queued at once. The sweep
# (beat, every minute) sends one held delivery of a failing subscription when its rest is over,
# in case the probing delivery gave up.


def _held_back(delivery: WebhookDelivery, subscription: WebhookSubscription) -> bool:
    """True (and the delivery's next attempt set) if another delivery of this failing
    subscription was attempted less than its back-off ago."""
    rest = timedelta(seconds=backoff(subscription.failure_streak))
    others = WebhookDelivery.objects.filter(subscription=subscription, status=Status.PENDING)
    last = (
        others.filter(last_attempt_at__isnull=False)
        .exclude(pk=delivery.pk)
        .order_by("-last_attempt_at")
        .values_list("last_attempt_at", flat=True)
        .first()
    )
    if last is None or last + rest <= now():
        return False
    WebhookDelivery.objects.filter(pk=delivery.pk, status=Status.PENDING, attempts=delivery.attempts).update(
        next_attempt_at=last + rest
    )
    return True


def _held_release(subscription: WebhookSubscription, delivered: WebhookDelivery) -> None:
    """The receiver answered again: queue the deliveries held back meanwhile (a task that turns
    up for one of them as well finds its attempt made)."""
    held = WebhookDelivery.objects.filter(subscription=subscription, status=Status.PENDING).exclude(
        pk=delivered.pk
    )
    for pk, attempts in held.order_by("pk").values_list("pk", "attempts"):
        delivery_queue(pk, attempts)


def _streak_add(subscription: WebhookSubscription) -> bool:
    """Count a failed attempt; True if that disabled the subscription."""
    row = WebhookSubscription.objects.filter(pk=subscription.pk)
    row.update(failure_streak=F("failure_streak") + 1, failing_since=Coalesce("failing_since", now()))
    streak, since = row.values_list("failure_streak", "failing_since").get()
    assert since is not None  # set by the update just above
    hours = settings.WEBHOOK_DISABLE_HOURS
    if streak < settings.WEBHOOK_DISABLE_AFTER or since > now() - timedelta(hours=hours):
        return False
    reason = (
        f"Disabled after {streak} failed attempts in a row since {DateTimeField().to_representation(since)}."
    )
    return subscription_disable(subscription=subscription, reason=reason)


@transaction.atomic
def delivery_redeliver(*, actor: Actor, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again now, whatever became of it (the receiver lost it, or was down).
    It keeps its id and body, so a receiver that has it already can tell."""
    delivery = WebhookDelivery.objects.select_for_update().select_related("subscription").get(pk=delivery.pk)
    if not delivery.subscription.active:
        raise ValidationError("The subscription is disabled; turn it on again first.")
    old = delivery.status
    delivery.status, delivery.next_attempt_at, delivery.delivered_at = Status.PENDING, now(), None
    delivery.save(update_fields=["status", "next_attempt_at", "delivered_at"])
    audit_record(
        actor=actor, instance=delivery, action="redeliver", changes={"status": [old, Status.PENDING]}
    )
    transaction.on_commit(lambda: delivery_queue(delivery.pk, delivery.attempts))
    return delivery


def delivery_sweep(*, overdue_minutes: int = 15) -> int:
    """Queue the pending deliveries whose next attempt is long overdue (the broker lost the task,
    or was down when it was queued), and for each failing subscription the first delivery held
    back whose time has come (one: it probes the receiver). A task that turns up after all
    finds its attempt made."""
    count = 0
    failing = WebhookSubscription.objects.filter(active=True, failure_streak__gt=0).values_list(
        "pk", flat=True
    )
    for subscription_id in failing:
        due = WebhookDelivery.objects.filter(subscription_id=subscription_id, status=Status.PENDING,
                                             next_attempt_at__lte=now())  # fmt: skip
        first = due.order_by("next_attempt_at", "pk").values_list("pk", "attempts").first()
        if first:
            delivery_queue(*first)
            count += 1
    overdue = now() - timedelta(minutes=overdue_minutes)
    late = WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lt=overdue)
    for pk, attempts in late.values_list("pk", "attempts")[:1000]:
        delivery_queue(pk, attempts)
        count += 1
    return count
