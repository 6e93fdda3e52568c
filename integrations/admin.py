"""The HL7 message log (searchable; inbound messages replayed, outbound ones resent) and the
PMS endpoints we send to."""
from django.contrib import admin, messages

from integrations.hl7.inbound import message_replay
from integrations.hl7.outbound import message_resend
from integrations.models import HL7Endpoint, HL7Message
from patients.admin import ReadOnlyAdmin


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


@admin.register(HL7Endpoint)
class HL7EndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "host", "port", "version", "receiving_application", "events", "active"]
    list_filter = ["active", "version"]
