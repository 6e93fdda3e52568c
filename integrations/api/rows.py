"""Animals and studies as the API shows them, read as plain rows.

A page is one statement: its rows with the joined columns (species, breed, the current weight;
a study's counts) and each row's related records (owners, external ids; series) as a JSON array
read by a subquery; then a dict per row built by a plain function. Model instances and a nested
ModelSerializer per row cost more than the database did, and every further statement costs
more to build in the ORM and to send than its rows cost to read.

These functions are the API's one way to show an animal or a study: the lists call them on a
page, the serializers' ``to_representation`` on a single record. The serializers declare the
fields (the OpenAPI schema is built from them, input is validated against them), and
``fields_check`` holds each writer to its serializer when the API is imported: the same fields,
in the same order, or the import fails naming what differs (and tests/test_api_responses.py
holds every answer to the schema, types included).
"""

from collections.abc import Iterable
from datetime import date, datetime, time, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypedDict

import orjson
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Aggregate, Count, Expression, JSONField, OuterRef, QuerySet, Subquery
from django.db.models.sql.compiler import SQLCompiler
from django.urls import reverse
from django.utils.timezone import get_current_timezone
from rest_framework import serializers

from imaging.models import Instance, Series, Study
from patients.models import Ownership, Patient, PatientExternalId, WeightRecord

if TYPE_CHECKING:  # (the stubs' name for what an expression's as_sql returns: the SQL and its parameters)
    from django.db.models.sql.compiler import _AsSqlType

KG = Decimal("0.001")  # WeightRecord.kg's places


class JSONRowsField(JSONField):
    """What JSONRows gives back: the JSON text decoded by orjson (Django's JSONField decodes
    with the standard library's json, ~4 µs a value; a page of 100 animals has 200)."""

    def from_db_value(
        self, value: str | None, expression: Expression, connection: BaseDatabaseWrapper
    ) -> list[list[Any]] | None:  # (the rows' columns: JSON values)
        return orjson.loads(value) if value is not None else None


class JSONRows(Aggregate):
    """The rows' columns as one JSON array of arrays, ``[[a, b], [a, b]]``, in no promised
    order (the caller sorts), as text: PostgreSQL's json_agg (building json costs it less than
    jsonb, ~15% of a 100-row page), SQLite's json_group_array. (Django's JSONArray would do for
    the inner array, but it casts every column anew for each query.)"""

    template = "JSON_AGG(JSON_BUILD_ARRAY(%(expressions)s))::text"
    output_field = JSONRowsField()

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> "_AsSqlType":
        template = "JSON_GROUP_ARRAY(JSON_ARRAY(%(expressions)s))"
        return self.as_sql(compiler, connection, template=template, **extra_context)


def related_json(model: type[Ownership | PatientExternalId | Series], link: str, *columns: str) -> Subquery:
    """A subquery for ``model``'s rows that point at the outer row through ``link``: one JSON
    array of ``[column, ...]`` arrays (NULL when there are none)."""
    rows = model.objects.filter(**{link: OuterRef("pk")}).order_by().values(link)
    return Subquery(rows.annotate(found=JSONRows(*columns)).values("found"))


def iso_datetime(value: datetime | None, zone: tzinfo | None = None) -> str | None:
    """A date-time as DRF writes it: in the current time zone, ISO 8601, UTC as ``Z``.
    ``zone``: the current time zone, when the caller has it (looking it up costs more than
    the rest of this)."""
    if value is None:
        return None
    text = value.astimezone(zone or get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def iso(value: date | time | None) -> str | None:
    """A date or a time as DRF writes it."""
    return value.isoformat() if value is not None else None


# A row of patient_rows or study_rows: its columns by name, as the database gave them.
Row = dict[str, Any]


def fields_check(serializer_class: type[serializers.Serializer[Any]], written: Iterable[str]) -> None:
    """``written`` (the keys a writer here writes, in order) are the fields ``serializer_class``
    shows, in its order; else ImproperlyConfigured, naming what is missing on which side."""
    shown = [name for name, field in serializer_class().fields.items() if not field.write_only]
    if shown == list(written):
        return
    missing = [name for name in shown if name not in written]
    extra = [name for name in written if name not in shown]
    raise ImproperlyConfigured(
        f"{serializer_class.__name__} and rows.py differ: the serializer shows {shown}, rows.py writes "
        f"{list(written)} (not written: {missing or 'none'}; not in the serializer: {extra or 'none'})."
    )


# --- animals ----------------------------------------------------------------------------------


class Coded(TypedDict):
    code: str
    system: str
    name: str


class OwnerLink(TypedDict):
    owner: int
    role: str
    primary: bool


class ExternalId(TypedDict):
    system: str
    value: str


class PatientBody(TypedDict):
    """An animal as the API shows it (PatientSerializer's fields)."""

    id: int
    patient_id: str
    name: str
    breed_text: str
    sex: str
    neutered: bool
    birth_date: str | None
    birth_date_estimated: bool
    colour: str
    microchip: str
    deceased: bool
    deceased_on: str | None
    notes: str
    owners: list[OwnerLink]
    updated: str | None
    species: Coded
    breed: Coded | None
    weight_kg: str | None
    external_ids: list[ExternalId]


PATIENT_COLUMNS = (
    "id", "patient_id", "name", "breed_text", "sex", "neutered", "birth_date", "birth_date_estimated", "colour",
    "microchip", "deceased", "deceased_on", "notes", "updated", "species__code", "species__scheme", "species__name",
    "breed__code", "breed__scheme", "breed__name", "current_weight_kg", "owners_found", "external_ids_found",
)  # fmt: skip


def patient_rows(patients: QuerySet[Patient]) -> QuerySet[Patient, Row]:
    """The animals of a queryset as dicts of PATIENT_COLUMNS: species and breed joined, the
    current weight (Patient.current_weight's rule: the newest measurement), the owners and the
    external ids read with the row."""
    rows: QuerySet[Patient, Row] = patients.annotate(  # (values() of names the stubs cannot follow: Any)
        current_weight_kg=WeightRecord.newest_kg(OuterRef("pk")),
        owners_found=related_json(Ownership, "patient", "is_primary", "id", "owner_id", "role"),
        external_ids_found=related_json(PatientExternalId, "patient", "id", "system", "value"),
    ).values(*PATIENT_COLUMNS)
    return rows


def patients_json(rows: Iterable[Row]) -> list[PatientBody]:
    """The API's body for each row of ``patient_rows``."""
    zone = get_current_timezone()
    return [patient_json(row, zone) for row in rows]


def patient_json(row: Row, zone: tzinfo | None = None) -> PatientBody:
    weight = row["current_weight_kg"]
    # Ownership's order (the primary owner first, then as linked) and the external ids' (as made).
    owners = sorted(row["owners_found"] or [], key=lambda found: (not found[0], found[1]))
    external_ids = sorted(row["external_ids_found"] or [])
    # The keys in the order PatientSerializer always wrote them (its read fields, then the
    # coded and computed ones), so the bytes stay the same for clients that diff them.
    return {
        "id": row["id"],
        "patient_id": row["patient_id"],
        "name": row["name"],
        "breed_text": row["breed_text"],
        "sex": row["sex"],
        "neutered": row["neutered"],
        "birth_date": iso(row["birth_date"]),
        "birth_date_estimated": row["birth_date_estimated"],
        "colour": row["colour"],
        "microchip": row["microchip"],
        "deceased": row["deceased"],
        "deceased_on": iso(row["deceased_on"]),
        "notes": row["notes"],
        "owners": [
            {"owner": owner, "role": role, "primary": bool(primary)} for primary, _, owner, role in owners
        ],
        "updated": iso_datetime(row["updated"], zone),
        "species": {
            "code": row["species__code"],
            "system": row["species__scheme"],
            "name": row["species__name"],
        },
        "breed": (
            {"code": row["breed__code"], "system": row["breed__scheme"], "name": row["breed__name"]}
            if row["breed__code"] is not None
            else None
        ),
        # (SQLite hands the subquery's decimal back unscaled: 31.4000000000000.)
        "weight_kg": str(Decimal(weight).quantize(KG)) if weight is not None else None,
        "external_ids": [{"system": system, "value": value} for _, system, value in external_ids],
    }


# The keys patient_json writes, in order (for fields_check).
PATIENT_FIELDS = tuple(patient_json(dict.fromkeys(PATIENT_COLUMNS)))


# --- studies ----------------------------------------------------------------------------------


class StudyBody(TypedDict):
    """A study as the API shows it (StudySerializer's fields)."""

    id: int
    study_instance_uid: str
    patient: int | None
    order: int | None
    link: str
    accession_number: str
    study_date: str | None
    study_time: str | None
    description: str
    referring_physician: str
    modalities: list[str]
    series_count: int
    instance_count: int
    received_at: str | None
    viewer_url: str
    thumbnail_url: str | None
    updated: str | None


STUDY_COLUMNS = (
    "id", "study_instance_uid", "patient_id", "order_id", "link", "accession_number", "study_date", "study_time",
    "description", "referring_physician", "received_at", "updated", "instance_count", "series_found",
)  # fmt: skip


def study_rows(studies: QuerySet[Study]) -> QuerySet[Study, Row]:
    """The studies of a queryset as dicts of STUDY_COLUMNS: their image count and their series
    (for the modalities and the thumbnail) read with the row."""
    images = Instance.objects.filter(series__study=OuterRef("pk")).order_by().values("series__study")
    rows: QuerySet[Study, Row] = studies.annotate(  # (as patient_rows)
        instance_count=Subquery(images.annotate(count=Count("id")).values("count")),
        series_found=related_json(Series, "study", "series_number", "id", "modality", "thumbnail_key"),
    ).values(*STUDY_COLUMNS)
    return rows


def studies_json(rows: Iterable[Row]) -> list[StudyBody]:
    """The API's body for each row of ``study_rows``."""
    viewer, thumbnail = link_around_id("study_detail"), link_around_id("series_thumbnail")
    zone = get_current_timezone()
    return [study_json(row, viewer, thumbnail, zone) for row in rows]


def link_around_id(name: str) -> tuple[str, str]:
    """A page's absolute URL by name, as the parts before and after the record's id: reversed
    once a page rather than twice a row (reverse() costs more than the rest of a row)."""
    before, _, after = reverse(name, args=[123456789]).partition("123456789")
    return settings.SITE_URL + before, after


def study_json(
    row: Row, viewer: tuple[str, str], thumbnail: tuple[str, str], zone: tzinfo | None = None
) -> StudyBody:
    """``viewer`` and ``thumbnail``: link_around_id's parts."""
    # Series' order: by number, unnumbered last (as PostgreSQL sorts NULLs), then as received.
    series = sorted(row["series_found"] or [], key=lambda found: (found[0] is None, found[0] or 0, found[1]))
    shown = next((pk for _, pk, _, key in series if key), None)
    return {
        "id": row["id"],
        "study_instance_uid": row["study_instance_uid"],
        "patient": row["patient_id"],
        "order": row["order_id"],
        "link": row["link"],
        "accession_number": row["accession_number"],
        "study_date": iso(row["study_date"]),
        "study_time": iso(row["study_time"]),
        "description": row["description"],
        "referring_physician": row["referring_physician"],
        "modalities": sorted({modality for _, _, modality, _ in series if modality}),
        "series_count": len(series),
        "instance_count": row["instance_count"] or 0,
        "received_at": iso_datetime(row["received_at"], zone),
        "viewer_url": f"{viewer[0]}{row['id']}{viewer[1]}",
        "thumbnail_url": f"{thumbnail[0]}{shown}{thumbnail[1]}" if shown is not None else None,
        "updated": iso_datetime(row["updated"], zone),
    }


# The keys study_json writes, in order (for fields_check).
STUDY_FIELDS = tuple(study_json(dict.fromkeys(STUDY_COLUMNS), ("", ""), ("", "")))
