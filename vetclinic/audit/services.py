"""Writing the audit log. Every service that changes a record calls ``audit_record``."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.contrib.auth.models import AnonymousUser, User
from django.contrib.contenttypes.models import ContentType
from django.db.models import Field, Model

from vetclinic.audit.models import AuditEntry, Channel

# What changes_apply finds: {field: [old, new]}, each as text or None. An audit entry records
# these, or its service's own (a version: a number).
Changes = dict[str, list[str | None]]


@dataclass(frozen=True)
class Actor:
    """Who is making a change and through which channel; passed to every writing service."""

    channel: str
    user: User | AnonymousUser | None = None  # a django User, for the UI and staff using the API
    name: str = ""  # an API client, an HL7 sending application, an AE title, a task

    @classmethod
    def for_user(cls, user: User | AnonymousUser | None, channel: str = Channel.UI) -> "Actor":
        return cls(channel=channel, user=user)

    @classmethod
    def system(cls, name: str) -> "Actor":
        return cls(channel=Channel.SYSTEM, name=name)


def _as_text(value: object) -> str | None:
    return None if value is None else str(value)


# Any: values are whatever the model's fields take, one field each.
def changes_apply(instance: Model, values: dict[str, Any]) -> Changes:
    """Set ``values`` on ``instance``; return {field: [old, new]} for those that differ."""
    changes: Changes = {}
    for name, new in values.items():
        # A model's own field, never a reverse relation (no attname): callers name what they set.
        field = cast("Field[Any, Any]", instance._meta.get_field(name))
        if field.is_relation:
            # Compare ids: reading an unset relation raises, and a fetch per field is waste.
            old_id = getattr(instance, field.attname)
            if old_id != (new.pk if new is not None else None):
                changes[name] = [str(getattr(instance, name)) if old_id else None, _as_text(new)]
                setattr(instance, name, new)
        elif getattr(instance, name) != new:
            changes[name] = [_as_text(getattr(instance, name)), _as_text(new)]
            setattr(instance, name, new)
    return changes


def audit_record(
    *,
    actor: Actor,
    instance: Model,
    action: str,
    changes: Mapping[str, Sequence[str | int | None]] | None = None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        channel=actor.channel,
        user=actor.user if isinstance(actor.user, User) and actor.user.pk else None,
        actor=actor.name[:200],
        action=action,
        object_type=ContentType.objects.get_for_model(instance),
        object_id=str(instance.pk),
        object_repr=str(instance)[:200],
        changes=changes or {},
    )
