from typing import Any

from celery import Task, shared_task
from django.utils.dateparse import parse_datetime

from integrations import retention
from integrations.hl7 import outbound
from integrations.webhooks import delivery as webhook_delivery
from integrations.webhooks import services as webhooks


# Exponential backoff (2 s, 4 s, … capped at 10 minutes) until the PMS answers; an AE or AR
# is final and stays in the message log for someone to look at.
@shared_task(bind=True, max_retries=None)
def hl7_send(self: Task, message_id: int) -> str:
    try:
        return outbound.message_send(message_id=message_id)
    except outbound.SendLater as later:
        raise self.retry(countdown=min(2 ** (self.request.retries + 1), 600), exc=later) from None


@shared_task
def hl7_order_event(order_id: int, event: str) -> list[int]:
    return [m.pk for m in outbound.order_event(order_id, event)]


# Webhooks (integrations/webhooks): the same backoff, up to an hour between attempts, until a
# 2xx, WEBHOOK_MAX_ATTEMPTS, or the subscription is disabled. Each retry names its attempt.
@shared_task(bind=True, max_retries=None)
def webhook_send(self: Task, delivery_id: int, attempt: int | None = None) -> str | None:
    try:
        return webhook_delivery.delivery_send(delivery_id=delivery_id, attempt=attempt)
    except webhook_delivery.SendLater as later:
        raise self.retry(args=(delivery_id, later.attempt), countdown=later.countdown, exc=later) from None


@shared_task
def webhook_event(event: str, kind: str, pk: int, details: dict[str, Any], created: str) -> list[int]:
    deliveries = webhooks.object_event_publish(
        event=event, kind=kind, pk=pk, details=details, created=parse_datetime(created)
    )
    return [d.pk for d in deliveries]


@shared_task
def webhook_sweep() -> int:
    return webhook_delivery.delivery_sweep()


@shared_task
def logs_prune() -> dict[str, int]:
    return retention.logs_prune()
