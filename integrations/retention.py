"""How long the integration logs are kept.

Every HL7 message in and out, every webhook delivery and every Idempotency-Key is logged, so
that staff can see what a PMS sent and was told, and replay or resend it. A busy clinic's PMS
sends thousands of ADT messages a day: kept for ever, the logs would outgrow the clinic record
they describe. ``logs_prune`` (a daily Celery beat task) deletes what is finished and older
than its setting; what is still waiting to be sent is never deleted, however old.

- ``HL7_LOG_KEEP_DAYS`` (365): inbound messages answered (AA/AE/AR) and outbound ones ended
  (acknowledged or given up). A PMS resending a control id older than that (HL7 v2.9 2.10.1
  duplicate detection) would be handled as a new message; no PMS resends after a year.
- ``WEBHOOK_LOG_KEEP_DAYS`` (90): deliveries delivered, given up or not sent.
- ``IDEMPOTENCY_KEY_KEEP_DAYS`` (7): a client retrying a POST after that gets a new record, as
  with Stripe's 24 hours; a week covers a PMS that was down over a long weekend.
"""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils.timezone import now

from integrations.models import HL7Message, IdempotencyKey, WebhookDelivery

BATCH = 5000  # rows a DELETE statement takes, so that no statement holds its locks for long


def _delete(queryset: QuerySet[Any]) -> int:
    deleted = 0
    while ids := list(queryset.values_list("pk", flat=True)[:BATCH]):
        deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]
    return deleted


def logs_prune(*, at: datetime | None = None) -> dict[str, int]:
    """Delete the finished log rows older than their settings; returns the count per log."""
    at = at or now()
    ended = [HL7Message.Status.PROCESSED, HL7Message.Status.ERROR, HL7Message.Status.REJECTED,
             HL7Message.Status.SENT, HL7Message.Status.FAILED]  # fmt: skip
    hl7 = HL7Message.objects.filter(
        created__lt=at - timedelta(days=settings.HL7_LOG_KEEP_DAYS), status__in=ended
    )
    deliveries = WebhookDelivery.objects.filter(
        created__lt=at - timedelta(days=settings.WEBHOOK_LOG_KEEP_DAYS),
        status__in=[WebhookDelivery.Status.DELIVERED, WebhookDelivery.Status.FAILED, WebhookDelivery.Status.DISABLED],
    )  # fmt: skip
    keys = IdempotencyKey.objects.filter(created__lt=at - timedelta(days=settings.IDEMPOTENCY_KEY_KEEP_DAYS))
    return {
        "hl7_messages": _delete(hl7),
        "webhook_deliveries": _delete(deliveries),
        "idempotency_keys": _delete(keys),
    }
