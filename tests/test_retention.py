"""integrations/retention.py: finished log rows past their keeping time go; the rest stays."""

from datetime import timedelta

import pytest
from django.utils.timezone import now

from integrations import tasks
from integrations.api.clients import api_client_create
from integrations.models import HL7Message, IdempotencyKey, WebhookDelivery
from integrations.retention import logs_prune
from integrations.webhooks.services import subscription_create

pytestmark = pytest.mark.django_db
Status, Delivery = HL7Message.Status, WebhookDelivery.Status


def test_finished_rows_older_than_their_setting_are_deleted_and_nothing_waiting_is(
    actor, settings, monkeypatch
):
    settings.HL7_LOG_KEEP_DAYS, settings.WEBHOOK_LOG_KEEP_DAYS, settings.IDEMPOTENCY_KEY_KEEP_DAYS = 30, 10, 2
    monkeypatch.setattr("integrations.retention.BATCH", 2)  # several batches
    today = now()

    def message(status, age, direction="in"):
        return HL7Message.objects.create(direction=direction, status=status, raw="MSH|...",
                                         control_id=f"C{HL7Message.objects.count()}", created=today - age).pk  # fmt: skip

    old, fresh = timedelta(days=31), timedelta(days=29)
    gone = [message(Status.PROCESSED, old), message(Status.ERROR, old), message(Status.REJECTED, old),
            message(Status.SENT, old, "out"), message(Status.FAILED, old, "out")]  # fmt: skip
    kept = [
        message(Status.PROCESSED, fresh),
        message(Status.SENT, fresh, "out"),
        message(Status.PENDING, old * 10, "out"),
    ]

    client, _ = api_client_create(actor=actor, name="PMS", scopes=["*"])
    subscription, _ = subscription_create(
        actor=actor, client=client, url="https://pms.example/h", events=["patient.updated"]
    )

    def delivery(status, days):
        return WebhookDelivery.objects.create(subscription=subscription, event="patient.updated", payload={}, status=status,
                                              created=today - timedelta(days=days)).pk  # fmt: skip

    deliveries_gone = [
        delivery(Delivery.DELIVERED, 11),
        delivery(Delivery.FAILED, 11),
        delivery(Delivery.DISABLED, 11),
    ]
    deliveries_kept = [delivery(Delivery.DELIVERED, 9), delivery(Delivery.PENDING, 400)]
    for key, days in (("old", 3), ("new", 1)):
        IdempotencyKey.objects.create(client=client, key=key, method="POST", path="/api/v1/orders", body_hash="0" * 64,
                                      status_code=201, response={}, created=today - timedelta(days=days))  # fmt: skip

    assert logs_prune(at=today) == {"hl7_messages": 5, "webhook_deliveries": 3, "idempotency_keys": 1}
    assert sorted(HL7Message.objects.values_list("pk", flat=True)) == sorted(kept)
    assert not HL7Message.objects.filter(pk__in=gone).exists()
    assert sorted(WebhookDelivery.objects.values_list("pk", flat=True)) == sorted(deliveries_kept)
    assert not WebhookDelivery.objects.filter(pk__in=deliveries_gone).exists()
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
    # Run daily by Celery beat (vetclinic/settings.py): nothing more to do the same day.
    assert tasks.logs_prune() == {"hl7_messages": 0, "webhook_deliveries": 0, "idempotency_keys": 0}


def test_the_prune_runs_daily_in_the_beat_schedule(settings):
    schedule = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule["integrations.tasks.logs_prune"] == 86400.0
