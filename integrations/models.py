"""The HL7 message log, the practice-management systems we send to, and the API clients."""

import hashlib
import secrets

from django.db import models
from django.db.models import Q
from django.utils.timezone import now


class HL7Endpoint(models.Model):
    """A practice-management system that hears from us over MLLP, and about what."""

    EVENTS = [("study_received", "Images received for an order"), ("order_completed", "Order completed"),
              ("report_final", "Report final")]  # fmt: skip

    name = models.CharField(max_length=64, unique=True)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField()
    version = models.CharField(max_length=8, default="2.5.1", help_text="2.3.1 to 2.6")
    receiving_application = models.CharField(max_length=64, blank=True)  # MSH-5
    receiving_facility = models.CharField(max_length=64, blank=True)  # MSH-6
    events = models.JSONField(default=list, blank=True, help_text="Empty: every event")
    timeout = models.PositiveIntegerField(default=30, help_text="Seconds to wait for the ACK")
    active = models.BooleanField(default=True)
    created = models.DateTimeField(default=now)

    class Meta:
        verbose_name = "HL7 endpoint"

    def __str__(self):
        return f"{self.name} ({self.host}:{self.port})"

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events


class HL7Message(models.Model):
    """Every HL7 message in or out: raw text, who, what, and how it ended (the ACK)."""

    class Direction(models.TextChoices):
        IN = "in", "Inbound"
        OUT = "out", "Outbound"

    class Status(models.TextChoices):
        PROCESSED = "processed", "Processed (AA)"
        ERROR = "error", "Error (AE)"
        REJECTED = "rejected", "Rejected (AR)"
        PENDING = "pending", "Waiting to be sent"
        SENT = "sent", "Acknowledged (AA)"
        FAILED = "failed", "Refused or undeliverable"

    direction = models.CharField(max_length=3, choices=Direction.choices)
    status = models.CharField(max_length=16, choices=Status.choices)
    peer = models.CharField(max_length=255, blank=True)  # address:port
    sending_application = models.CharField(max_length=180, blank=True)  # MSH-3
    sending_facility = models.CharField(max_length=180, blank=True)  # MSH-4
    control_id = models.CharField(max_length=199, blank=True)  # MSH-10
    message_type = models.CharField(max_length=32, blank=True)  # MSH-9, e.g. ADT^A08
    version = models.CharField(max_length=16, blank=True)  # MSH-12
    # Inbound: SHA-256 of the message (integrations/hl7/messages.py message_digest), so that
    # a control id reused for another message is not taken for a repeat of the first.
    digest = models.CharField(max_length=64, blank=True)
    raw = models.TextField()
    ack_code = models.CharField(max_length=2, blank=True)  # MSA-1
    ack = models.TextField(blank=True)
    error = models.TextField(blank=True)
    repeats = models.PositiveIntegerField(default=0)  # the same control id sent again
    attempts = models.PositiveIntegerField(default=0)  # outbound sends tried
    endpoint = models.ForeignKey(
        HL7Endpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    # Outbound: sent one at a time per animal, oldest first, so a PMS never hears "completed"
    # before "images received".
    patient_id = models.IntegerField(null=True, blank=True)
    created = models.DateTimeField(default=now, db_index=True)
    updated = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "HL7 message"
        indexes = [
            # hl7_send: is an older message to the same endpoint about the same animal unsent?
            models.Index(
                fields=["endpoint", "patient_id", "id"],
                name="hl7_outbound_queue",
                condition=Q(status="pending"),
            ),
        ]
        constraints = [
            # The same control id from the same sender with the same content is the same
            # message (HL7 2.9 2.10.1, original acknowledgment mode): answered with the first
            # ACK, never redone. A message without a control id is keyed by its content alone.
            models.UniqueConstraint(
                fields=["sending_application", "sending_facility", "control_id", "digest"],
                condition=Q(direction="in"),
                name="hl7_inbound_once",
            ),
        ]

    def __str__(self):
        return f"{self.direction} {self.message_type} {self.control_id}"


class HL7HeldOrder(models.Model):
    """A new order whose service code (OBR-4) neither the catalog nor the crosswalk knows: its
    message was accepted (AA) and its animal registered, and it waits here, listed with the
    code (patients.UnmappedCode), until an admin maps the code; the message is then run
    again and the order made (integrations/hl7/held.py). A later XO replaces the message it
    waits with; CA or DC removes it."""

    code = models.ForeignKey("patients.UnmappedCode", on_delete=models.CASCADE, related_name="held_orders")
    # The message it waits with, kept here too: the log deletes old messages (retention.py).
    message = models.ForeignKey(
        HL7Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    raw = models.TextField()
    peer = models.CharField(max_length=255, blank=True)
    sending_application = models.CharField(max_length=180)  # MSH-3: placer numbers are per sender
    placer_order_number = models.CharField(max_length=64)
    error = models.TextField(blank=True, help_text="Why running it again failed, if it did")
    created = models.DateTimeField(default=now)

    class Meta:
        verbose_name = "HL7 order held for an unmapped code"
        verbose_name_plural = "HL7 orders held for unmapped codes"
        constraints = [
            models.UniqueConstraint(
                fields=["sending_application", "placer_order_number"], name="hl7_held_order_once"
            )
        ]

    def __str__(self):
        return f"{self.placer_order_number} ({self.code.external_code})"


class ApiClient(models.Model):
    """One practice-management system's access to the REST API (integrations/api).

    The key is shown once, when it is made; only its prefix (to find the client) and a SHA-256
    of it are stored. Keys are 256 random bits, so a fast hash is as safe as a slow one.
    """

    RESOURCES = ["owners", "patients", "visits", "orders", "studies", "reports", "reference", "webhooks",
                 "annotations", "sends"]  # fmt: skip

    name = models.CharField(max_length=64, unique=True)
    key_prefix = models.CharField(max_length=12, unique=True)
    key_hash = models.CharField(max_length=64)
    # ["patients:read", "patients:write", ...]; "*" for every scope.
    scopes = models.JSONField(default=list)
    rate_limit = models.PositiveIntegerField(default=600, help_text="Requests per minute")
    active = models.BooleanField(default=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=now)

    class Meta:
        verbose_name = "API client"

    def __str__(self):
        return self.name

    @staticmethod
    def key_hash_of(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def key_new(cls) -> tuple[str, str]:
        """(prefix, full key): the key is ``vp_<prefix>_<secret>``."""
        prefix = secrets.token_hex(4)
        return prefix, f"vp_{prefix}_{secrets.token_urlsafe(32)}"

    def allows(self, resource: str, write: bool) -> bool:
        wanted = f"{resource}:{'write' if write else 'read'}"
        return (
            "*" in self.scopes or wanted in self.scopes or (not write and f"{resource}:write" in self.scopes)
        )


class WebhookSubscription(models.Model):
    """An API client's URL that hears about events (integrations/webhooks), signed with ``secret``.

    ``active`` is the client's switch. A long failure streak turns it off by itself and says so in
    ``disabled_at`` and ``disabled_reason`` (integrations/webhooks/delivery.py, delivery_send).
    """

    EVENTS = [
        ("patient.updated", "An animal was registered or its record changed"),
        ("patient.merged", "An animal's record was merged into another"),
        ("order.status_changed", "An imaging order changed status"),
        ("study.received", "Images for an order arrived"),
        ("study.completed", "The order's imaging is complete"),
        ("report.finalized", "A report was made final"),
        ("study.sent", "A send of a study to a destination ended (sent, partly or not)"),
        # Sharing (sharing/): a share link opened, a consult asked for and answered.
        ("share.opened", "A share link was opened"),
        ("consult.requested", "A consult was requested"),
        ("consult.reported", "A consult report was filed"),
    ]

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500, help_text="http or https; receives a POST per event")
    # Kept as it is: the signature needs it. Shown to the client once, when it is made.
    secret = models.CharField(max_length=128)
    events = models.JSONField(default=list)
    description = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    failure_streak = models.PositiveIntegerField(default=0, help_text="Failed attempts since the last 2xx")
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(default=now)
    updated = models.DateTimeField(default=now)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.client}: {self.url}"

    def wants(self, event: str) -> bool:
        return self.active and event in self.events


class WebhookDelivery(models.Model):
    """One event sent (or to be sent) to one subscription, with how each attempt went."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent or retried"
        DELIVERED = "delivered", "Delivered (2xx)"
        FAILED = "failed", "Given up after the last attempt"
        DISABLED = "disabled", "Not sent: the subscription was disabled"

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32)
    # The body as sent: {"id", "event", "created", "data"}.
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # One per attempt, oldest first; null: no HTTP answer (timeout, refused connection).
    response_codes = models.JSONField(default=list, blank=True)
    response_body = models.CharField(max_length=1000, blank=True)  # the last answer's start
    error = models.CharField(max_length=500, blank=True)  # why the last attempt failed
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The API's delivery list (integrations/webhooks/views.py): a client's, newest first.
            models.Index(fields=["subscription", "-id"], name="webhook_delivery_list"),
            # subscription_disable: the subscription's deliveries still waiting.
            models.Index(fields=["subscription", "status"], name="webhook_delivery_status"),
            # delivery_sweep: pending deliveries whose next attempt is overdue.
            models.Index(
                fields=["next_attempt_at"], name="webhook_delivery_due", condition=Q(status="pending")
            ),
        ]

    def __str__(self):
        return f"{self.event} #{self.pk} ({self.status})"

    @property
    def response_status(self):
        return self.response_codes[-1] if self.response_codes else None


class IdempotencyKey(models.Model):
    """A client's POST and our answer, kept under its Idempotency-Key: the same POST again
    (a retry after a timeout) gets the same answer and creates nothing."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="idempotency_keys")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    body_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "key"], name="idempotency_key_once")]

    def __str__(self):
        return f"{self.method} {self.path} ({self.key})"
