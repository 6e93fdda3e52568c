from django.contrib.contenttypes.models import ContentType

from vetclinic.audit.models import AuditEntry


def audit_history(*, instance, limit=30):
    """The latest changes to one record, newest first (the record pages' History)."""
    return AuditEntry.objects.filter(
        object_type=ContentType.objects.get_for_model(instance), object_id=str(instance.pk)
    ).select_related("user")[:limit]
