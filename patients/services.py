"""Writes to the clinic record. The UI, HL7 and REST all come through here.

Every service is keyword-only, atomic (without a savepoint of its own inside the HL7 listener's
all-or-nothing transaction, vetclinic/db.py), and writes an audit entry for each record it changes;
a call that changes nothing writes nothing, so a repeated inbound message leaves no trace.
The ``savepoints`` keyword every service declares is read by its decorator
(vetclinic/transactions.py service_atomic), not by the service.
"""

from collections.abc import Collection
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.utils.timezone import now

from patients import events
from patients.models import (
    Owner,
    OwnerExternalId,
    Ownership,
    Patient,
    PatientExternalId,
    SearchTerm,
    Visit,
    WeightRecord,
)
from patients.search import OWNER_FIELDS_SEARCHED, PATIENT_FIELDS_SEARCHED, search_terms_refresh
from patients.selectors import owner_by_external_id, patient_by_external_id
from vetclinic import clock
from vetclinic.audit.services import Actor, Changes, audit_record, changes_apply
from vetclinic.db import CompiledQuery
from vetclinic.transactions import service_atomic

OWNER_FIELDS = {f.name for f in Owner._meta.fields} - {"id", "created", "updated"}
PATIENT_FIELDS = {f.name for f in Patient._meta.fields} - {
    "id",
    "merged_into",
    "dicom_name_key",
    "created",
    "updated",
}
VISIT_FIELDS = {"starts_at", "reason", "vet", "status"}

# (coding system, value): an id another system gives a record (HL7 PID-3, a REST client's id).
ExternalId = tuple[str, str]
# Values for a model's fields by name (Any: each field takes its own type).
Fields = dict[str, Any]


def _check_fields(fields: Collection[str], allowed: set[str]) -> None:
    unknown = set(fields) - allowed
    if unknown:
        raise TypeError(f"unknown fields: {', '.join(sorted(unknown))}")


def _save(*, actor: Actor, instance: Owner | Patient | Visit, values: Fields) -> Changes:
    """Create or update ``instance`` with ``values`` and audit it; return the changes made."""
    creating = instance.pk is None
    changes = changes_apply(instance, values)
    if not creating and not changes:
        return {}
    instance.updated = now()
    instance.full_clean(exclude=["patient_id", *([] if creating else _unchanged(instance, changes))])
    instance.save()
    if creating:
        changes = {k: v for k, v in changes.items() if v[1] not in (None, "")}
    audit_record(actor=actor, instance=instance, action="create" if creating else "update", changes=changes)
    return changes


def _unchanged(instance: Model, changes: Changes) -> list[str]:
    """Fields an update need not validate again: those it leaves as they were, unless a
    constraint on a changed field needs them. They were valid when stored, and checking them
    costs a query for each related row and each conditional constraint."""
    checked = set(changes)
    for constraint in instance._meta.constraints:
        names = set(getattr(constraint, "fields", ()))
        condition = getattr(constraint, "condition", None)
        if condition is not None:
            names |= condition.referenced_base_fields
        if names & checked:
            checked |= names
    return [f.name for f in instance._meta.fields if f.name not in checked]


def _external_add(
    *,
    actor: Actor,
    instance: Owner | Patient,
    model: type[OwnerExternalId | PatientExternalId],
    external: ExternalId,
) -> bool:
    """Attach (system, value) to ``instance`` unless it is there already; True if it was not."""
    system, value = external
    name = "owner" if isinstance(instance, Owner) else "patient"  # the link's field
    link, created = model.objects.get_or_create(system=system, value=value, defaults={name: instance})
    if getattr(link, f"{name}_id") != instance.pk:
        raise ValidationError(f"{system} id {value} already belongs to {getattr(link, name)}.")
    if created:
        audit_record(
            actor=actor,
            instance=instance,
            action="external_id_add",
            changes={"external_id": [None, str(link)]},
        )
    return created


@service_atomic
def owner_upsert(
    *,
    actor: Actor,
    fields: Fields,
    owner: Owner | None = None,
    external: ExternalId | None = None,
    savepoints: bool = True,
) -> Owner:
    """Create or update an owner. With ``external=(system, value)`` it is idempotent on that id."""
    _check_fields(fields, OWNER_FIELDS)
    linked = False  # the owner has the external id already
    if owner is None and external is not None:
        owner = owner_by_external_id(system=external[0], value=external[1])
        linked = owner is not None
    creating = owner is None
    owner = owner or Owner()
    changes = _save(actor=actor, instance=owner, values=fields)
    added = (
        external is not None
        and not linked
        and _external_add(actor=actor, instance=owner, model=OwnerExternalId, external=external)
    )
    if creating or added or changes.keys() & OWNER_FIELDS_SEARCHED:
        search_terms_refresh(owners=[owner], owners_animals=True)
    return owner


def _patient_id_assign(patient: Patient) -> None:
    """Derive the clinic patient ID from the primary key: short, readable, never reused."""
    candidate = base = f"{settings.PATIENT_ID_PREFIX}{patient.pk:06d}"
    suffix = 1
    while Patient.objects.filter(patient_id=candidate).exists():
        suffix += 1
        candidate = f"{base}-{suffix}"
    patient.patient_id = candidate
    patient.save(update_fields=["patient_id"])


@service_atomic
def patient_upsert(
    *,
    actor: Actor,
    fields: Fields,
    patient: Patient | None = None,
    external: ExternalId | None = None,
    owner: Owner | None = None,
    owner_role: str = Ownership.Role.OWNER,
    weight_kg: Decimal | float | str | None = None,
    weight_on: date | None = None,
    savepoints: bool = True,
) -> Patient:
    """Create or update an animal; idempotent on ``external=(system, value)``.

    ``owner`` is linked (primary when the animal has no primary owner yet); ``weight_kg`` adds a
    weight record unless the same weight is already recorded for that day.
    """
    _check_fields(fields, PATIENT_FIELDS)
    if patient is None and external is not None:
        patient = patient_by_external_id(system=external[0], value=external[1])
    creating = patient is None
    patient = patient or Patient()
    fields = dict(fields)
    if not fields.get("patient_id"):
        fields.pop("patient_id", None)  # keep the existing id, or generate one below
    species_id = fields["species"].pk if fields.get("species") else patient.species_id
    if fields.get("breed") is not None and fields["breed"].species_id != species_id:
        raise ValidationError({"breed": "This breed belongs to another species."})
    changed = _save(actor=actor, instance=patient, values=fields)
    if creating and not patient.patient_id:
        _patient_id_assign(patient)
    added = external is not None and _external_add(
        actor=actor, instance=patient, model=PatientExternalId, external=external
    )
    # The search words (and the worklist name key) change with the name, the ids and the
    # owners; an update of anything else, say the weight or the birth date, leaves them be.
    refresh = creating or added or bool(changed.keys() & PATIENT_FIELDS_SEARCHED)
    # The two steps below run in this service's transaction, without a savepoint each: if one
    # fails, the whole upsert is undone anyway.
    if owner is not None:
        _ownership_set(actor=actor, patient=patient, owner=owner, role=owner_role, refresh=not refresh)
    if weight_kg is not None:
        _weight_record(actor=actor, patient=patient, kg=weight_kg, measured_on=weight_on)
    if refresh:
        search_terms_refresh(patients=[patient])
    if changed or added:
        names = sorted(changed) + (["external_ids"] if added else [])
        events.patient_event_publish(patient, events.PATIENT_UPDATED, changed=names)
    return patient


@service_atomic
def ownership_set(
    *,
    actor: Actor,
    patient: Patient,
    owner: Owner,
    role: str = Ownership.Role.OWNER,
    primary: bool | None = None,
    refresh: bool = True,
    savepoints: bool = True,
) -> Ownership:
    """Link an owner to an animal. The first owner becomes primary unless ``primary=False``.
    With ``refresh``, the animal's search words are rewritten if the link changed."""
    return _ownership_set(
        actor=actor, patient=patient, owner=owner, role=role, primary=primary, refresh=refresh
    )


# Read on every HL7 ADT that names an owner: compiled once (vetclinic/db.py).
_OWNERSHIPS_OF = CompiledQuery(lambda patient_id: Ownership.objects.filter(patient_id=patient_id))


def _ownership_set(
    *, actor: Actor, patient: Patient, owner: Owner, role: str, primary: bool | None = None, refresh: bool
) -> Ownership:
    ownerships: list[Ownership] = _OWNERSHIPS_OF.run(patient.pk)
    has_primary = any(o.is_primary and o.owner_id != owner.pk for o in ownerships)
    ownership = next((o for o in ownerships if o.owner_id == owner.pk), None)
    if primary is None:
        primary = ownership.is_primary if ownership else not has_primary
    if primary and has_primary:
        patient.ownerships.filter(is_primary=True).exclude(owner=owner).update(is_primary=False)
    if ownership is None:
        ownership = Ownership.objects.create(patient=patient, owner=owner, role=role, is_primary=primary)
        audit_record(
            actor=actor,
            instance=patient,
            action="owner_add",
            changes={"owner": [None, str(owner)], "role": [None, role], "primary": [None, str(primary)]},
        )
    else:
        changes = changes_apply(ownership, {"role": role, "is_primary": primary})
        if not changes:
            return ownership
        ownership.save()
        audit_record(
            actor=actor,
            instance=patient,
            action="owner_change",
            changes={"owner": [str(owner), str(owner)], **changes},
        )
    if refresh:
        search_terms_refresh(patients=[patient])
    return ownership


@service_atomic
def ownership_remove(*, actor: Actor, patient: Patient, owner: Owner, savepoints: bool = True) -> None:
    ownership = Ownership.objects.get(patient=patient, owner=owner)
    if ownership.is_primary and patient.ownerships.count() > 1:
        raise ValidationError("Make another owner primary before removing the primary owner.")
    ownership.delete()
    audit_record(actor=actor, instance=patient, action="owner_remove", changes={"owner": [str(owner), None]})
    search_terms_refresh(patients=[patient])


@service_atomic
def weight_record(
    *,
    actor: Actor,
    patient: Patient,
    kg: Decimal | float | str,
    measured_on: date | None = None,
    savepoints: bool = True,
) -> WeightRecord:
    """Record a weight; the same weight on the same day again records nothing."""
    return _weight_record(actor=actor, patient=patient, kg=kg, measured_on=measured_on)


# Read on every HL7 ADT that carries a weight: compiled once (vetclinic/db.py).
_WEIGHT_ON = CompiledQuery(
    lambda patient_id, kg, day: WeightRecord.objects.filter(patient_id=patient_id, kg=kg, measured_on=day)[
        :1
    ],
)


def _weight_record(
    *, actor: Actor, patient: Patient, kg: Decimal | float | str, measured_on: date | None
) -> WeightRecord:
    kg = Decimal(str(kg)).quantize(Decimal("0.001"))
    if kg <= 0:
        raise ValidationError({"kg": "A weight must be more than 0 kg."})
    measured_on = measured_on or clock.today()  # the clinic's day (TIME_ZONE), not the server's
    # Looked up, then created: get_or_create would wrap the insert in a savepoint, which buys
    # nothing here (no constraint makes a weight unique, so there is no conflict to survive).
    record: WeightRecord | None = _WEIGHT_ON.first(patient.pk, kg, measured_on)
    if record is None:
        record = WeightRecord.objects.create(patient=patient, kg=kg, measured_on=measured_on)
        audit_record(
            actor=actor,
            instance=patient,
            action="weight_record",
            changes={"weight_kg": [None, f"{kg} on {measured_on}"]},
        )
    return record


@service_atomic
def visit_create(
    *,
    actor: Actor,
    patient: Patient,
    starts_at: datetime | None = None,
    reason: str = "",
    vet: User | None = None,
    status: str = Visit.Status.BOOKED,
    external: ExternalId | None = None,
    savepoints: bool = True,
) -> Visit:
    """Book a visit; idempotent on ``external=(system, visit number)``."""
    if external is not None:
        existing = Visit.objects.filter(external_system=external[0], external_id=external[1]).first()
        if existing is not None:
            return existing
    visit = Visit(patient=patient)
    if external is not None:
        visit.external_system, visit.external_id = external
    _save(
        actor=actor,
        instance=visit,
        values={"starts_at": starts_at or now(), "reason": reason, "vet": vet, "status": status},
    )
    return visit


@service_atomic
def visit_update(*, actor: Actor, visit: Visit, fields: Fields, savepoints: bool = True) -> Visit:
    _check_fields(fields, VISIT_FIELDS)
    _save(actor=actor, instance=visit, values=fields)
    return visit


def _merge_fill(source: Patient, target: Patient) -> Fields:
    """Fill the target's empty demographics from the source (a merge must not lose data)."""
    fill: Fields = {}
    for field in ("breed", "breed_text", "birth_date", "colour", "microchip", "deceased_on", "notes"):
        if getattr(target, field) in (None, "") and getattr(source, field) not in (None, ""):
            fill[field] = getattr(source, field)
    if target.sex == Patient.Sex.UNKNOWN and source.sex != Patient.Sex.UNKNOWN:
        fill["sex"] = source.sex
    if not target.neutered and source.neutered:
        fill["neutered"] = source.neutered
    return fill


@service_atomic
def patient_merge(*, actor: Actor, source: Patient, target: Patient, savepoints: bool = True) -> Patient:
    """Merge ``source`` into ``target``: everything that points at the source moves over.

    The source stays as an alias (``merged_into``), so its patient ID still finds the target
    and studies that arrive later with the old ID still link (DICOM and HL7 A40 both need it).
    """
    source = Patient.objects.select_for_update().get(pk=source.pk)
    target = Patient.objects.select_for_update().get(pk=target.pk)
    if source.pk == target.pk:
        raise ValidationError("A patient cannot be merged into itself.")
    if source.merged_into_id or target.merged_into_id:
        raise ValidationError("One of these patients has already been merged.")
    if source.species_id != target.species_id:
        raise ValidationError("The two patients are of different species.")

    # Owners of both: keep the target's link where both have the same owner.
    Ownership.objects.filter(patient=source, owner__in=target.owners.all()).delete()
    if target.ownerships.filter(is_primary=True).exists():
        Ownership.objects.filter(patient=source).update(is_primary=False)
    SearchTerm.objects.filter(patient=source).delete()

    # Every other relation to Patient, including those later apps add (orders, studies).
    moved: dict[str, int] = {}
    for relation in Patient._meta.related_objects:
        if not (relation.one_to_many or relation.one_to_one) or relation.related_model is Patient:
            continue
        count = relation.related_model._base_manager.filter(**{relation.field.name: source}).update(
            **{relation.field.name: target}
        )
        if count:
            moved[str(relation.related_model._meta.verbose_name_plural)] = count
    Patient.objects.filter(merged_into=source).update(merged_into=target)

    # The alias keeps its own values (a microchip too: uniqueness covers living records only).
    fill = _merge_fill(source, target)
    source.merged_into = target
    source.updated = now()
    source.save(update_fields=["merged_into", "updated"])
    if fill:
        _save(actor=actor, instance=target, values=fill)
    audit_record(
        actor=actor, instance=source, action="merged_into", changes={"merged_into": [None, str(target)]}
    )
    audit_record(
        actor=actor,
        instance=target,
        action="merge",
        changes={"merged": [None, str(source)], **{k: [None, str(v)] for k, v in moved.items()}},
    )
    search_terms_refresh(patients=[target])
    events.patient_event_publish(source, events.PATIENT_MERGED)
    return target
