"""An animal registered by another system: one call with plain data, every rule applied here.

A practice-management system names an animal by its own ids, its species and breed by its own
codes, its owner by an account number, its visit by a visit number. ``patient_register`` takes
all of that as one ``AnimalRegistration`` (the HL7 adapter, integrations/hl7/inbound_adt.py,
unpacks an ADT message into one; REST or an import can build one the same way), looks up and
decides everything in the clinic record, and writes through the services the desk uses
(patients/services.py). What it refuses it refuses with ``RegistrationRefused``, naming the
registration's field; the caller says where that field came from (an HL7 segment and field).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, TypeVar, cast

from patients.crosswalk import breed_standin, species_is_standin, species_standin, unmapped_code_seen
from patients.models import Breed, CodeMapping, Owner, Patient, Species, UnmappedCode, Visit
from patients.selectors import (
    coded_breed,
    coded_species,
    owner_by_external_id,
    patient_by_external_id,
    visit_by_external_id,
)
from patients.services import owner_upsert, patient_merge, patient_upsert, visit_create, visit_update
from vetclinic.audit.services import Actor
from vetclinic.transactions import service_atomic

Sex = Patient.Sex
ExternalId = tuple[str, str]  # (system, value): whose id it is, and the id
Vocabulary = TypeVar("Vocabulary", Species, Breed)
Problem = Literal["missing", "taken", "unknown"]


@dataclass(frozen=True)
class Coded:
    """A code from the sender's vocabulary: ``system`` is its coding system ("" when the
    sender names none: the code is then its own), ``text`` what it means in words."""

    system: str
    code: str
    text: str = ""


@dataclass(frozen=True)
class OwnerDetails:
    """The owner as sent. None means "not sent": what the clinic has is kept."""

    family_name: str
    given_name: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    postcode: str | None = None
    country: str | None = None
    phone: str | None = None
    mobile: str | None = None


@dataclass(frozen=True)
class VisitDetails:
    """A visit to book, known to the sender by ``number``; ``starts_at`` None means now."""

    number: str
    starts_at: datetime | None = None
    emergency: bool = False


@dataclass(frozen=True)
class AnimalRegistration:
    """Everything another system says about one animal in one go.

    ``sender`` namespaces the sender's codes, owner accounts and visit numbers ("hl7:VETPMS").
    ``ids`` are the sender's ids of the animal, its own first. ``owner`` None with an
    ``owner_account`` names an owner the clinic already knows by that account, changing nothing
    of it. ``example`` is kept with a code the crosswalk does not map (where it was seen).
    """

    sender: str
    ids: Sequence[ExternalId]
    name: str
    birth_date: date | None = None
    sex: str = Sex.UNKNOWN
    species_code: Coded | None = None
    breed_code: Coded | None = None
    breed_text: str = ""  # the breed in words, kept when no breed code resolves
    owner: OwnerDetails | None = None
    owner_account: str = ""
    weight_kg: Decimal | None = None
    visit: VisitDetails | None = None
    example: Mapping[str, str] = field(default_factory=dict)


class RegistrationRefused(Exception):
    """What another system sent cannot be applied. ``field`` names the registration's field
    (``species``, ``visit``, ``ids``, ``merged_ids``); ``problem`` says what is wrong with it:
    ``missing`` (required, not sent), ``taken`` (it belongs to another record) or ``unknown``
    (it names nothing the clinic has). ``reason`` reads on from the field's name."""

    def __init__(self, *, field: str, problem: Problem, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field, self.problem, self.reason = field, problem, reason


@service_atomic
def patient_register(*, actor: Actor, registration: AnimalRegistration, savepoints: bool = True) -> Patient:
    """Create or update the animal of ``registration`` with its owner, weight and visit.

    The animal is the one known by any of its ids; it gets the sender's own id (``ids[0]``)
    if it was found by another. The services below run inside this one's transaction, without
    a savepoint each: an error undoes the whole registration anyway."""
    reg = registration
    if not reg.ids:
        raise RegistrationRefused(
            field="ids", problem="missing", reason="are required: the sender's id first"
        )
    patient, found_by = _patient_find(reg.ids)
    species, unmapped_species = _coded(reg, reg.species_code, CodeMapping.Kind.SPECIES, coded_species)
    breed, unmapped_breed = _coded(reg, reg.breed_code, CodeMapping.Kind.BREED, coded_breed)
    if (
        species is None
        and unmapped_species
        and (patient is None or species_is_standin(species_id=patient.species_id))
    ):
        # An unmapped species code: a mapped breed says what it meant; else a new animal carries
        # the stand-in named after the sender's text until the code is mapped. A known animal
        # keeps the species it has.
        species = breed.species if breed is not None else species_standin(unmapped=unmapped_species)
    if species is None and patient is None:
        raise RegistrationRefused(field="species", problem="missing", reason="is required for a new animal")
    fields: dict[str, object] = {"name": reg.name, "birth_date": reg.birth_date, "sex": reg.sex}
    if species is not None:
        fields["species"] = species
    if unmapped_breed is not None:
        # The stand-in of the animal's species, or (a code another species' stand-in has) text.
        # (A new animal without a species was refused above: without one, the animal is known.)
        of_species = species if species is not None else cast(Patient, patient).species
        breed = breed_standin(unmapped=unmapped_breed, species=of_species)
    if breed is not None:
        fields["breed"], fields["breed_text"] = breed, ""
    elif reg.breed_text:
        fields["breed"], fields["breed_text"] = None, reg.breed_text
    owner = _owner(actor, reg, patient)
    patient = patient_upsert(
        actor=actor, fields=fields, patient=patient, owner=owner, weight_kg=reg.weight_kg,
        external=None if found_by == reg.ids[0] else reg.ids[0],  # found by the sender's own id: linked
        savepoints=False,
    )  # fmt: skip
    if reg.visit is not None:
        _visit_book(actor, reg.sender, reg.visit, patient)
    return patient


def _patient_find(ids: Sequence[ExternalId]) -> tuple[Patient | None, ExternalId | None]:
    """The animal known by the first of ``ids`` that names one, and that id."""
    for system, value in ids:
        patient = patient_by_external_id(system=system, value=value)
        if patient is not None:
            return patient, (system, value)
    return None, None


def _coded(
    reg: AnimalRegistration,
    coded: Coded | None,
    kind: str,
    lookup: Callable[..., Vocabulary | None],
) -> tuple[Vocabulary | None, UnmappedCode | None]:
    """A species or breed code through the crosswalk: (ours, None), or for a code the
    crosswalk does not map (None, the UnmappedCode it was counted in); (None, None) when no
    code is sent. The sender's own coding system names the crosswalk entry; without one, or
    when that has no entry, the sender does."""
    if coded is None:
        return None, None
    code = coded.code or coded.text  # text alone (^Canine): the text is what the crosswalk maps
    if not code:
        return None, None
    found = lookup(system=coded.system or reg.sender, code=code) or lookup(system=reg.sender, code=code)
    if found is not None:
        return found, None
    example = {**reg.example, "text": coded.text[:64], "patient": reg.ids[0][1]}
    system = coded.system or reg.sender
    return None, unmapped_code_seen(system=system, kind=kind, code=code, text=coded.text, example=example)


def _owner(actor: Actor, reg: AnimalRegistration, patient: Patient | None) -> Owner | None:
    """The owner meant: the one with the sender's account number when one is sent, else the
    animal's current owner of that family name, else a new one. Without details, an account
    names an owner the clinic knows and changes nothing of it."""
    account = reg.owner_account
    external = (f"{reg.sender}:account", account) if account else None
    if reg.owner is None:
        return owner_by_external_id(system=external[0], value=external[1]) if external else None
    details = {name: value for name, value in vars(reg.owner).items() if value is not None}
    owner = None
    if not account and patient is not None:
        family = reg.owner.family_name.lower()
        owner = next((o for o in patient.owners.all() if o.family_name.lower() == family), None)
    return owner_upsert(actor=actor, fields=details, owner=owner, external=external, savepoints=False)


def _visit_book(actor: Actor, sender: str, visit: VisitDetails, patient: Patient) -> Visit:
    """Book the visit the sender numbers ``visit.number``: once (idempotent on the number), and
    never for another animal than the one it was booked for."""
    booked = visit_by_external_id(system=sender, value=visit.number)
    if booked is not None and booked.patient_id != patient.pk:
        raise RegistrationRefused(
            field="visit", problem="taken", reason=f"{visit.number} belongs to another animal"
        )
    return booked or visit_create(
        actor=actor, patient=patient, starts_at=visit.starts_at, reason="Emergency" if visit.emergency else "",
        external=(sender, visit.number), savepoints=False,
    )  # fmt: skip


@service_atomic
def patient_merge_by_ids(
    *, actor: Actor, ids: Sequence[ExternalId], merged_ids: Sequence[ExternalId], savepoints: bool = True
) -> Patient:
    """Merge the animal another system knows by any of ``merged_ids`` into the one it knows by
    any of ``ids`` (patient_merge). Merged already (a repeat): the animal, unchanged."""
    target, _ = _patient_find(ids)
    if target is None:
        raise RegistrationRefused(field="ids", problem="unknown", reason="name no animal to merge into")
    source, _ = _patient_find(merged_ids)
    if source is None:
        raise RegistrationRefused(field="merged_ids", problem="unknown", reason="name no animal to merge")
    if source.pk == target.pk:
        return target  # the merged ids lead to the survivor: merged before
    return patient_merge(actor=actor, source=source, target=target, savepoints=False)


@service_atomic
def visit_end(
    *, actor: Actor, sender: str, number: str, cancelled: bool = False, savepoints: bool = True
) -> Visit:
    """The visit ``sender`` numbers ``number`` is over: finished, or ``cancelled``."""
    visit = visit_by_external_id(system=sender, value=number) if number else None
    if visit is None:
        raise RegistrationRefused(field="visit", problem="unknown", reason=f"number '{number}' is not known")
    status = Visit.Status.CANCELLED if cancelled else Visit.Status.FINISHED
    return visit_update(actor=actor, visit=visit, fields={"status": status}, savepoints=False)
