"""Destinations and routing rules are an admin's; sends and the routing history are read here."""

from django import forms
from django.contrib import admin

from sending.models import Destination, RoutingLog, RoutingRule, Send, SendResult


class DestinationForm(forms.ModelForm):
    # Write-only: never rendered back into the page (render_value=False); left empty, kept.
    auth_header = forms.CharField(
        label="Authorization header", required=False, max_length=500,
        widget=forms.PasswordInput(render_value=False),
        help_text="e.g. 'Bearer …' or 'Basic …'. Never shown again; leave empty to keep the stored one.",
    )  # fmt: skip
    auth_clear = forms.BooleanField(label="Remove the stored Authorization header", required=False)

    class Meta:
        model = Destination
        fields = [
            "name",
            "kind",
            "node",
            "stow_url",
            "auth_header",
            "auth_clear",
            "calling_ae_title",
            "active",
        ]

    def clean_auth_header(self) -> str:
        given = self.cleaned_data.get("auth_header") or ""
        return given if given else (self.instance.auth_header if self.instance.pk else "")

    def save(self, commit: bool = True) -> Destination:
        destination = super().save(commit=False)
        if self.cleaned_data.get("auth_clear"):
            destination.auth_header = ""
        if commit:
            destination.save()
        return destination


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    form = DestinationForm
    list_display = ["name", "kind", "node", "stow_url", "has_auth", "active"]
    list_filter = ["kind", "active"]

    @admin.display(boolean=True, description="auth stored")
    def has_auth(self, obj: Destination) -> bool:
        return bool(obj.auth_header)


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "destination",
        "station_ae",
        "modality",
        "procedure",
        "species",
        "teleradiology_only",
        "stable_seconds",
        "active",
    ]
    list_filter = ["active", "destination"]


@admin.register(RoutingLog)
class RoutingLogAdmin(admin.ModelAdmin):
    list_display = ["created", "rule", "study", "send", "send_state"]
    list_filter = ["rule"]
    readonly_fields = ["rule", "study", "send", "created"]

    @admin.display(description="state")
    def send_state(self, obj: RoutingLog) -> str:
        return obj.send.get_state_display() if obj.send else "—"

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


class SendResultInline(admin.TabularInline):
    model = SendResult
    fields = ["sop_instance_uid", "outcome", "status", "comment"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Send)
class SendAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "created",
        "study",
        "destination",
        "state",
        "completed",
        "warning",
        "failed",
        "total",
        "attempts",
    ]
    list_filter = ["state", "destination"]
    readonly_fields = [f.name for f in Send._meta.fields]
    inlines = [SendResultInline]

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False
