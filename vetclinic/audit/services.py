"""Writing the audit log. Every service that changes a record calls ``audit_record``."""

from dataclasses import dataclass

from django.contrib.contenttypes.models import ContentType

from vetclinic.audit.models import AuditEntry, Channel


@dataclass(frozen=True)
class Actor:
    """Who is making a change and through which channel; passed to every writing service."""

    channel: str
    user: object = None  # a django User, for the UI and staff using the API
    name: str = ""  # an API client, an HL7 sending application, an AE title, a task

    @classmethod
    def for_user(cls, user, channel=Channel.UI):
        return cls(channel=channel, user=user)

    @classmethod
    def system(cls, name):
        return cls(channel=Channel.SYSTEM, name=name)


def _as_text(value):
    return None if value is None else str(value)


def changes_apply(instance, values):
    """Set ``values`` on ``instance``; return {field: [old, new]} for those that differ."""
    changes = {}
    for name, new in values.items():
        field = instance._meta.get_field(name)
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


def audit_record(*, actor, instance, action, changes=None):
    return AuditEntry.objects.create(
        channel=actor.channel,
        user=actor.user if getattr(actor.user, "pk", None) else None,
        actor=actor.name[:200],
        action=action,
        object_type=ContentType.objects.get_for_model(instance),
        object_id=str(instance.pk),
        object_repr=str(instance)[:200],
        changes=changes or {},
    )
