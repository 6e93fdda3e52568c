from rest_framework import serializers

from integrations.api.strict import StrictTypes
from integrations.models import WebhookDelivery, WebhookSubscription

EVENT_NAMES = [name for name, _ in WebhookSubscription.EVENTS]


class WebhookSubscriptionSerializer(StrictTypes, serializers.ModelSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_NAMES),
        allow_empty=False,
        min_length=1,
        max_length=len(EVENT_NAMES),
    )
    secret = serializers.CharField(
        write_only=True, required=False, min_length=16, max_length=128,
        help_text="Your own signing secret; left out, one is made and shown in the answer to the POST only.",
    )  # fmt: skip

    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "events", "description", "active", "secret", "failure_streak", "failing_since",
                  "disabled_at", "disabled_reason", "created", "updated"]  # fmt: skip
        read_only_fields = ["id", "failure_streak", "failing_since", "disabled_at", "disabled_reason", "created",
                            "updated"]  # fmt: skip
        extra_kwargs = {
            "url": {
                "help_text": "http:// or https://, on the public Internet: a host that is or resolves to a loopback, "
                "private or reserved address is refused unless an admin lists it in WEBHOOK_ALLOWED_HOSTS"
            },
            "active": {"help_text": "false pauses it; true turns a disabled subscription on again"},
            "disabled_at": {
                "help_text": "Set when a long failure streak turned it off; disabled_reason says why"
            },
        }


class WebhookSubscriptionCreatedSerializer(WebhookSubscriptionSerializer):
    """The answer to a POST: the only time the secret is shown."""

    secret = serializers.CharField(
        read_only=True, help_text="Check each delivery's VetPACS-Signature with it. Shown only now."
    )


class WebhookBodySerializer(serializers.Serializer):
    """What a receiver gets in the POST body (signed; see VetPACS-Signature)."""

    id = serializers.UUIDField(help_text="The event's id: the same for every subscription that hears it")
    # A plain string in the schema: the enum is the subscription's ``events`` (one name for it).
    event = serializers.CharField(help_text="One of the events a subscription names")
    created = serializers.DateTimeField(help_text="When it happened")
    # (The metaclass takes declared fields out of the class: Serializer.data stays the property.)
    data = serializers.DictField(  # type: ignore[assignment]
        help_text="patient / order / study (small: ids, external ids, status, links)"
    )


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event = serializers.CharField(read_only=True, help_text="One of the events a subscription names")
    payload = WebhookBodySerializer(read_only=True, help_text="The body as sent")
    response_codes = serializers.ListField(
        child=serializers.IntegerField(allow_null=True), read_only=True,
        help_text="Each attempt's HTTP status, oldest first; null where no answer came (timeout, refused)",
    )  # fmt: skip
    response_status = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The last attempt's status"
    )

    class Meta:
        model = WebhookDelivery
        fields = ["id", "subscription", "event", "status", "attempts", "response_codes", "response_status", "response_body",
                  "error", "next_attempt_at", "last_attempt_at", "delivered_at", "created", "payload"]  # fmt: skip
        read_only_fields = fields
