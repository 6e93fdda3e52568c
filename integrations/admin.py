"""The HL7 message log, searchable by type, control id, sender and text."""
from django.contrib import admin

from integrations.models import HL7Message
from patients.admin import ReadOnlyAdmin


@admin.register(HL7Message)
class HL7MessageAdmin(ReadOnlyAdmin):
    list_display = ["created", "direction", "message_type", "control_id", "sending_application", "peer", "status", "ack_code"]
    list_filter = ["direction", "status", "message_type"]
    search_fields = ["control_id", "sending_application", "message_type", "raw", "error"]
    date_hierarchy = "created"
