from django.contrib.contenttypes.models import ContentType
from django.db.models import Model, QuerySet

from vetclinic.audit.models import AuditEntry


def audit_history(*, instance: Model, limit: int = 30) -> QuerySet[AuditEntry]:
    """The latest changes to one record, newest first (the record pages' History)."""
    return AuditEntry.objects.filter(
        object_type=ContentType.objects.get_for_model(instance), object_id=str(instance.pk)
    ).select_related("user")[:limit]
