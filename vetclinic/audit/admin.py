from django.contrib import admin

from vetclinic.audit.models import AuditEntry


class ReadOnlyAdmin(admin.ModelAdmin):
    """A model shown in the admin but changed only by services (which audit), never by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Read-only: the audit log is written by services, never edited by hand."""

    list_display = ["at", "who", "channel", "action", "object_type", "object_repr"]
    list_filter = ["channel", "action", "object_type"]
    search_fields = ["object_repr", "object_id", "actor", "user__username"]
    date_hierarchy = "at"
    list_select_related = ["user", "object_type"]
