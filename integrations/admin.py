"""The HL7 message log (searchable; inbound messages replayed, outbound ones resent) and the
PMS endpoints we send to."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from integrations.api.clients import api_client_create, api_client_revoke
from integrations.hl7.held import held_order_make
from integrations.hl7.inbound import message_replay
from integrations.hl7.outbound import message_resend
from integrations.models import (
    ApiClient,
    HL7Endpoint,
    HL7HeldOrder,
    HL7Message,
    WebhookDelivery,
    WebhookSubscription,
)
from integrations.webhooks import delivery as webhook_delivery
from integrations.webhooks import services as webhooks
from vetclinic.audit.admin import ReadOnlyAdmin
from vetclinic.audit.services import Actor


@admin.register(HL7Message)
class HL7MessageAdmin(ReadOnlyAdmin):
    list_display = ["created", "direction", "message_type", "control_id", "sending_application", "peer", "status",
                    "ack_code", "attempts"]  # fmt: skip
    list_filter = ["direction", "status", "message_type", "endpoint"]
    search_fields = ["control_id", "sending_application", "message_type", "raw", "error"]
    date_hierarchy = "created"
    actions = ["replay", "resend"]

    @admin.action(description="Replay the selected inbound messages", permissions=["view"])
    def replay(self, request, queryset):
        for message in queryset.filter(direction=HL7Message.Direction.IN):
            message_replay(message=message)
            message.refresh_from_db()
            self.message_user(request, f"{message.control_id}: {message.ack_code} {message.error}".strip(),
                              messages.SUCCESS if message.ack_code == "AA" else messages.WARNING)  # fmt: skip

    @admin.action(description="Send the selected outbound messages again", permissions=["view"])
    def resend(self, request, queryset):
        count = 0
        for message in queryset.filter(direction=HL7Message.Direction.OUT):
            message_resend(message=message)
            count += 1
        self.message_user(request, f"{count} message(s) queued to be sent again.")


@admin.register(HL7HeldOrder)
class HL7HeldOrderAdmin(ReadOnlyAdmin):
    """Orders accepted with a service code nobody mapped yet; mapping the code (Clinic record ›
    Code mappings) makes them. The action tries again those that failed then."""

    list_display = ["placer_order_number", "code", "sending_application", "created", "error"]
    list_select_related = ["code"]
    search_fields = ["placer_order_number", "code__external_code"]
    actions = ["make"]

    @admin.action(description="Make the selected orders now (their code mapped)", permissions=["view"])
    def make(self, request, queryset):
        for held in queryset.select_related("code"):
            error = held_order_make(held=held)
            self.message_user(request, f"{held.placer_order_number}: {error or 'made'}",
                              messages.WARNING if error else messages.SUCCESS)  # fmt: skip


@admin.register(HL7Endpoint)
class HL7EndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "host", "port", "version", "receiving_application", "events", "active"]
    list_filter = ["active", "version"]


# Webhooks: each API client's subscriptions, and which are disabled and why; the delivery log,
# where an admin sends a delivery again.


class WebhookSubscriptionInline(admin.TabularInline):
    model = WebhookSubscription
    extra = 0
    can_delete = False
    fields = ["url", "events", "active", "failure_streak", "failing_since", "disabled_at", "disabled_reason"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # the client subscribes through the API, with its own secret


class ApiClientCreateForm(forms.ModelForm):
    """A new client: its key is made by api_client_create and shown once, after saving."""

    scopes = forms.MultipleChoiceField(
        choices=[("*", "Everything")] + [(f"{r}:{m}", f"{r}: {m}") for r in ApiClient.RESOURCES for m in ("read", "write")],
        widget=forms.CheckboxSelectMultiple,
    )  # fmt: skip

    class Meta:
        model = ApiClient
        fields = ["name", "scopes", "rate_limit"]


@admin.register(ApiClient)
class ApiClientAdmin(ReadOnlyAdmin):
    """Made here (the key shown once) or by `manage.py create_api_client`; revoked with the
    action; both through integrations/api/clients.py, so both are audited."""

    actions = ["revoke"]
    list_display = ["name", "scopes", "rate_limit", "active", "last_used", "webhooks_state"]
    list_filter = ["active"]
    search_fields = ["name"]
    fields = ["name", "scopes", "rate_limit", "active", "revoked_at", "last_used", "created", "key_prefix"]
    inlines = [WebhookSubscriptionInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("webhooks")

    def has_add_permission(self, request):
        return request.user.has_perm("integrations.add_apiclient")

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiClientCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ["name", "scopes", "rate_limit"] if obj is None else self.fields

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def save_model(self, request, obj, form, change):
        client, key = api_client_create(
            actor=Actor.for_user(request.user), name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"], rate_limit=form.cleaned_data["rate_limit"],
        )  # fmt: skip
        obj.pk = client.pk
        messages.warning(request, f"The API key of {client.name}, shown only now: {key}")

    @admin.action(description="Revoke the selected clients' keys", permissions=["view"])
    def revoke(self, request, queryset):
        for client in queryset.filter(active=True):
            api_client_revoke(actor=Actor.for_user(request.user), client=client)
        self.message_user(request, "Revoked.")

    @admin.display(description="Webhooks")
    def webhooks_state(self, client):
        subscriptions = list(client.webhooks.all())
        disabled = sum(1 for s in subscriptions if s.disabled_at)
        return f"{len(subscriptions)}, {disabled} disabled" if disabled else str(len(subscriptions))


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["client", "url", "events", "active", "failure_streak", "disabled_at", "disabled_reason"]
    list_filter = ["active", "client"]
    list_select_related = ["client"]
    search_fields = ["url", "client__name", "description"]
    fields = ["client", "url", "events", "description", "active", "failure_streak", "failing_since", "disabled_at",
              "disabled_reason", "created", "updated"]  # fmt: skip
    readonly_fields = ["client", "url", "events", "failure_streak", "failing_since", "disabled_at", "disabled_reason",
                       "created", "updated"]  # fmt: skip
    actions = ["turn_on"]

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        fields = {
            name: form.cleaned_data[name] for name in form.changed_data if name in ("description", "active")
        }
        webhooks.subscription_update(actor=Actor.for_user(request.user), subscription=obj, fields=fields)

    @admin.action(description="Turn the selected subscriptions on again", permissions=["change"])
    def turn_on(self, request, queryset):
        actor = Actor.for_user(request.user)
        for subscription in queryset.filter(active=False):
            webhooks.subscription_update(actor=actor, subscription=subscription, fields={"active": True})
        self.message_user(request, "Turned on; their failure counts start afresh.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created", "event", "subscription", "status", "attempts", "response_status", "error",
                    "next_attempt_at", "delivered_at"]  # fmt: skip
    list_filter = ["status", "event", "subscription__client"]
    list_select_related = ["subscription__client"]
    search_fields = ["error", "response_body", "subscription__url"]
    date_hierarchy = "created"
    actions = ["redeliver"]

    @admin.action(description="Send the selected deliveries again", permissions=["view"])
    def redeliver(self, request, queryset):
        sent, refused = 0, []
        for delivery in queryset.select_related("subscription"):
            try:
                webhook_delivery.delivery_redeliver(actor=Actor.for_user(request.user), delivery=delivery)
                sent += 1
            except ValidationError:
                refused.append(str(delivery.pk))
        self.message_user(request, f"{sent} delivery(ies) queued to be sent again.")
        if refused:
            message = f"Not sent, their subscription is off: {', '.join(refused)}."
            self.message_user(request, message, messages.WARNING)
