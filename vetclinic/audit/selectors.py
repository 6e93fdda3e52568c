from collections.abc import Sequence

from django.contrib.contenttypes.models import ContentType
from django.db.models import Model, QuerySet

from vetclinic.audit.models import AuditEntry


def audit_history(
    *, instance: Model, limit: int = 30, actions: Sequence[str] = (), actions_except: Sequence[str] = ()
) -> QuerySet[AuditEntry]:
    """The latest changes to one record, newest first (the record pages' History); only the
    ``actions`` given, or all but ``actions_except`` (a study's openings apart from its changes)."""
    entries = AuditEntry.objects.filter(
        object_type=ContentType.objects.get_for_model(instance), object_id=str(instance.pk)
    )
    if actions:
        entries = entries.filter(action__in=actions)
    if actions_except:
        entries = entries.exclude(action__in=actions_except)
    return entries.select_related("user")[:limit]
