"""Reads of the clinic record that views, HL7 and REST share."""

from collections.abc import Iterable
from typing import Any, TypeVar

from django.db.models import Prefetch, QuerySet
from django.db.models.signals import post_delete, post_save

from patients.models import Breed, CodeMapping, Owner, Ownership, Patient, SearchTerm, Species, Visit
from patients.search import query_words, term_prefix
from vetclinic.cache import Kept
from vetclinic.db import CompiledQuery

Coded = TypeVar("Coded", Species, Breed)


def _matching_ids(query: str, column: str) -> QuerySet[SearchTerm, dict[str, Any]] | None:
    """Ids of the rows whose search words cover every word of ``query``, or None if no words."""
    words = query_words(query)
    if not words:
        return None
    return _ids_matching_words(dict.fromkeys(words), column)  # each distinct word once, in the order typed


def _ids_matching_words(words: Iterable[str], column: str) -> QuerySet[SearchTerm, dict[str, Any]] | None:
    ids: QuerySet[SearchTerm, dict[str, Any]] | None = None
    for word in words:
        subquery = SearchTerm.objects.filter(term_prefix(word)).values(column)
        ids = subquery if ids is None else subquery.filter(**{f"{column}__in": ids})
    return ids


def patient_search(*, query: str, limit: int = 25) -> QuerySet[Patient]:
    """Living patients whose name, owner, phone, microchip, patient ID or external id match."""
    ids = _matching_ids(query, "patient_id")
    if ids is None:
        return Patient.objects.none()
    return (
        Patient.objects.filter(pk__in=ids, merged_into__isnull=True)
        .select_related("species", "breed")
        .prefetch_related(Prefetch("ownerships", queryset=Ownership.objects.select_related("owner")))
        .order_by("deceased", "name", "pk")[:limit]
    )


def patient_ids_matching(*, words: Iterable[str]) -> QuerySet[SearchTerm, dict[str, Any]] | None:
    """What ``patient_search`` matches for a query's distinct words (patients.search.query_words,
    at least one), as a subquery of patient ids (merged aliases among them), for a caller that
    reads the rows its own way: the REST list, which compiles its statement once and sends
    only the words."""
    return _ids_matching_words(words, "patient_id")


def owner_search(*, query: str, limit: int = 25) -> QuerySet[Owner]:
    ids = _matching_ids(query, "owner_id")
    if ids is None:
        return Owner.objects.none()
    return Owner.objects.filter(pk__in=ids).prefetch_related("patients")[:limit]


def patient_resolve(patient: Patient) -> Patient:
    """The living record for a patient that may have been merged (follows the alias chain)."""
    while patient.merged_into is not None:
        patient = patient.merged_into
    return patient


# Every HL7 ADT and REST upsert looks its animal and owner up by the sender's id: compiled once.
# (system, value) is unique, so ``[:1]`` is ``first()``.
_PATIENT_BY_EXTERNAL_ID = CompiledQuery(
    lambda system, value: Patient.objects.filter(
        external_ids__system=system, external_ids__value=value
    ).order_by("pk")[:1],
)
_OWNER_BY_EXTERNAL_ID = CompiledQuery(
    lambda system, value: Owner.objects.filter(external_ids__system=system, external_ids__value=value)[:1],
)


def owner_by_external_id(*, system: str, value: str) -> Owner | None:
    owner: Owner | None = _OWNER_BY_EXTERNAL_ID.first(system, value)
    return owner


def patient_by_external_id(*, system: str, value: str) -> Patient | None:
    patient: Patient | None = _PATIENT_BY_EXTERNAL_ID.first(system, value)
    return patient_resolve(patient) if patient else None


def visit_by_external_id(*, system: str, value: str) -> Visit | None:
    """The visit another system numbers ``value`` (its visit number, HL7 PV1-19)."""
    return Visit.objects.filter(external_system=system, external_id=value).first()


def patient_detail(*, pk: int) -> Patient:
    return (
        Patient.objects.select_related("species", "breed", "merged_into")
        .prefetch_related(
            Prefetch("ownerships", queryset=Ownership.objects.select_related("owner")),
            "external_ids",
            "aliases",
        )
        .get(pk=pk)
    )


def patient_visits(*, patient: Patient) -> QuerySet[Visit]:
    return Visit.objects.filter(patient=patient).select_related("vet").order_by("-starts_at")


def owner_patients(*, owner: Owner) -> QuerySet[Ownership]:
    return (
        Ownership.objects.filter(owner=owner, patient__merged_into__isnull=True)
        .select_related("patient__species", "patient__breed")
        .order_by("patient__name")
    )


def species_choices() -> QuerySet[Species]:
    return Species.objects.filter(active=True).order_by("group", "name")


def breed_choices(*, species: Species | int) -> QuerySet[Breed]:
    """Breeds of one species, mixed breeds first (the most common answer in practice)."""
    return Breed.objects.filter(species=species, active=True).order_by("-is_mixed", "name")


# What codes stand for, kept per process: an HL7 feed sends the same few species and breed
# codes in every message, and each lookup is one or two queries. Saving or deleting a species,
# a breed or a crosswalk entry empties it in the process that does so; other processes (the web
# server, where the crosswalk is edited, and the listeners) see the change within
# CODED_KEPT_SECONDS. A code not found is not kept: a crosswalk entry added for it (the usual
# fix for an "unknown code" AE) is seen by the very next message everywhere.
CODED_KEPT_SECONDS = 10
coded_kept = Kept("species and breed codes", seconds=CODED_KEPT_SECONDS)  # (kind, system, code) -> record


def coded_forget(**kwargs: object) -> None:
    """Forget every code looked up (a signal receiver, so it takes the signal's arguments)."""
    coded_kept.forget()


for _model in (Species, Breed, CodeMapping):
    post_save.connect(coded_forget, sender=_model, dispatch_uid=f"coded_forget_save_{_model.__name__}")
    post_delete.connect(coded_forget, sender=_model, dispatch_uid=f"coded_forget_delete_{_model.__name__}")


def _coded_lookup(kind: str, model: type[Coded], system: str, code: str) -> Coded | None:
    """Our ``kind`` (species or breed) for another system's code: its crosswalk entry, or the
    code itself when the system sends SNOMED CT (designator SCT, or SRT in older data). Kept
    for CODED_KEPT_SECONDS; a code not found is never kept."""
    kept: Coded | None = coded_kept.get((kind, system, code))
    if kept is not None:
        return kept
    mapping = (
        CodeMapping.objects.filter(system=system, kind=kind, external_code=code).select_related(kind).first()
    )
    found: Coded | None
    if mapping:
        found = getattr(mapping, kind)
    else:
        found = model.objects.filter(scheme="SCT", code=code).first() if system in ("SCT", "SRT") else None
    if found is not None:
        coded_kept.set((kind, system, code), found)
    return found


def coded_species(*, system: str, code: str) -> Species | None:
    return _coded_lookup(CodeMapping.Kind.SPECIES, Species, system, code)


def coded_breed(*, system: str, code: str) -> Breed | None:
    return _coded_lookup(CodeMapping.Kind.BREED, Breed, system, code)
