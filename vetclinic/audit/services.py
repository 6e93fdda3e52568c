"""Writing the audit log. Every service that changes a record calls ``audit_record``."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.contrib.auth.models import AnonymousUser, User
from django.contrib.contenttypes.models import ContentType
from django.db import DEFAULT_DB_ALIAS, connections, router
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
    return AuditEntry.objects.create(**_entry_fields(actor, instance, action, changes))


def _entry_fields(
    actor: Actor, instance: Model, action: str, changes: Mapping[str, Sequence[str | int | None]] | None
) -> dict[str, Any]:
    return {
        "channel": actor.channel,
        "user": actor.user if isinstance(actor.user, User) and actor.user.pk else None,
        "actor": actor.name[:200],
        "action": action,
        "object_type": ContentType.objects.get_for_model(instance),
        "object_id": str(instance.pk),
        "object_repr": str(instance)[:200],
        "changes": changes or {},
    }


def audit_read(
    *,
    actor: Actor,
    instance: Model,
    action: str,
    changes: Mapping[str, Sequence[str | int | None]] | None = None,
) -> None:
    """The audit entry of a read (a query: who asked what, how many answers), as audit_record
    writes it, in one statement whose commit does not wait for its WAL flush: on PostgreSQL,
    outside a transaction, the INSERT turns synchronous_commit off for its own transaction
    (``set_config(..., true)``), so the entry is lost only if PostgreSQL crashes within
    wal_writer_delay (~200 ms) of it, and the answers never wait on a disk flush (which cost
    more than the query) nor on the four round trips of BEGIN, SET LOCAL, INSERT and COMMIT.
    Within a transaction (its writes keep their durability) and on SQLite: audit_record."""
    connection = connections[router.db_for_write(AuditEntry) or DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        audit_record(actor=actor, instance=instance, action=action, changes=changes)
        return
    entry = AuditEntry(**_entry_fields(actor, instance, action, changes))
    fields = [field for field in AuditEntry._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(cast(str, field.column)) for field in fields)
    # Typed, as the INSERT's SELECT does not give its parameters the columns' types.
    values = ", ".join(f"CAST(%s AS {field.db_type(connection)})" for field in fields)
    sql = (
        f"INSERT INTO {quote(AuditEntry._meta.db_table)} ({columns}) "
        f"SELECT {values} WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL"
    )
    params = [field.get_db_prep_save(field.pre_save(entry, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
