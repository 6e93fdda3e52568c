"""The crosswalk at work on codes it does not map yet.

A practice-management system codes species, breeds and services with its own lookup codes
(``CANINE^Canine^OpenVPMS``, or no coding system at all). Refusing its message until an admin
maps the code would lose the registration or the order, so an unmapped code is accepted:
it is counted in ``UnmappedCode`` (with the last few messages that carried it) for an admin
to map, and the animal meanwhile carries a stand-in species or breed named after the
sender's text, under a private coding scheme (``99<SENDER>``, PS3.16 8.2), so that the
worklist and the pages show what the sender said. When the code is mapped, ``code_mapping_apply``
moves the animals from the stand-in to the mapped entry.
"""

import re
from typing import Any, TypeVar

from django.db.models import QuerySet
from django.utils.timezone import now

from patients.models import Breed, CodeMapping, Patient, Species, UnmappedCode
from patients.services import patient_upsert
from vetclinic.audit.services import Actor
from vetclinic.transactions import service_atomic

EXAMPLES_KEPT = 5

StandIn = TypeVar("StandIn", Species, Breed)


def _scheme(system: str) -> str:
    """A private Coding Scheme Designator (SH, 16) for a sender: 99 and its name."""
    tag = re.sub(r"[^A-Z0-9]", "", system.split(":", 1)[-1].upper())[:14]
    return f"99{tag or 'PMS'}"


def unmapped_code_seen(
    *, system: str, kind: str, code: str, text: str, example: dict[str, Any]
) -> UnmappedCode:
    """One more message carried ``code`` of ``kind`` from ``system`` and no mapping: count it
    and keep ``example`` (a small dict) among the last few. The row stays locked until the
    message's transaction ends, so concurrent messages with the same code count in turn."""
    at = now()
    key = {"system": system[:64], "kind": kind, "external_code": code[:64]}
    # Inserted if missing without an IntegrityError (which would end the message's
    # all-or-nothing transaction) when another message inserts it at the same moment.
    UnmappedCode.objects.bulk_create(
        [UnmappedCode(**key, first_seen=at, last_seen=at)], ignore_conflicts=True
    )
    unmapped = UnmappedCode.objects.select_for_update().get(**key)
    unmapped.count += 1
    unmapped.last_seen = at
    if text:
        unmapped.external_meaning = text[:128]
    unmapped.examples = [{"at": at.isoformat(timespec="seconds"), **example}, *unmapped.examples][
        :EXAMPLES_KEPT
    ]
    unmapped.save(update_fields=["count", "last_seen", "external_meaning", "examples"])
    return unmapped


def _standin(model: type[StandIn], unmapped: UnmappedCode, **fields: Any) -> StandIn:
    """The stand-in ``model`` row for ``unmapped`` (found or made): inactive, so that the desk
    does not pick it, and local."""
    name = (unmapped.external_meaning or unmapped.external_code)[:64]
    key = {"scheme": _scheme(unmapped.system), "code": unmapped.external_code[:32]}
    model.objects.bulk_create(
        [model(**key, **fields, meaning=name, name=name, is_local=True, active=False)], ignore_conflicts=True
    )
    return model.objects.get(**key)


def species_standin(*, unmapped: UnmappedCode) -> Species:
    """What an animal whose species code is unmapped carries meanwhile."""
    species = unmapped.species
    if species is None:
        species = unmapped.species = _standin(Species, unmapped)
        unmapped.save(update_fields=["species"])
    return species


def species_is_standin(*, species_id: int | None) -> bool:
    """Whether the species ``species_id`` is a stand-in for a code not mapped yet."""
    if species_id is None:
        return False
    return UnmappedCode.objects.filter(species_id=species_id).exists()


def breed_standin(*, unmapped: UnmappedCode, species: Species) -> Breed | None:
    """The stand-in breed of ``species`` for an unmapped breed code, or None when the code's
    stand-in belongs to another species (the sender's text is then kept as free text)."""
    breed = unmapped.breed
    if breed is None:
        breed = unmapped.breed = _standin(Breed, unmapped, species=species)
        unmapped.save(update_fields=["breed"])
    return breed if breed.species_id == species.pk else None


def unmapped_codes(*, kind: str | None = None) -> QuerySet[UnmappedCode]:
    """The codes still waiting for a mapping, most recently seen first (the admin's list)."""
    found = UnmappedCode.objects.filter(mapped__isnull=True)
    return found.filter(kind=kind) if kind else found


@service_atomic
def code_mapping_apply(*, actor: Actor, mapping: CodeMapping, savepoints: bool = True) -> int:
    """Move the animals that carried ``mapping``'s code while it was unmapped over to what it
    now maps to (each change audited as ``actor``'s); returns how many animals changed. The
    orders that waited for a service code are released by integrations/hl7/held.py."""
    unmapped = UnmappedCode.objects.filter(
        system=mapping.system, kind=mapping.kind, external_code=mapping.external_code
    ).first()
    if unmapped is None:
        return 0
    moved = 0
    if mapping.kind == CodeMapping.Kind.SPECIES and unmapped.species_id:
        # The stand-in breeds under the stand-in species belong to the mapped species now.
        Breed.objects.filter(species_id=unmapped.species_id, is_local=True, active=False).update(
            species=mapping.species
        )
        for patient in Patient.objects.filter(species_id=unmapped.species_id):
            patient_upsert(actor=actor, patient=patient, fields={"species": mapping.species})
            moved += 1
    # A breed mapping always has its breed (constraint code_mapping_target).
    elif mapping.kind == CodeMapping.Kind.BREED and unmapped.breed_id and mapping.breed is not None:
        standin_species = set(
            UnmappedCode.objects.filter(species__isnull=False).values_list("species_id", flat=True)
        )
        for patient in Patient.objects.filter(breed_id=unmapped.breed_id):
            fields: dict[str, Any] = {"breed": mapping.breed, "breed_text": ""}
            if patient.species_id != mapping.breed.species_id:
                if patient.species_id not in standin_species:
                    continue  # a breed of another species than the animal's known one: left as it is
                fields["species"] = mapping.breed.species  # the breed says what the species is
            patient_upsert(actor=actor, patient=patient, fields=fields)
            moved += 1
    unmapped.mapped = now()
    unmapped.save(update_fields=["mapped"])
    return moved
