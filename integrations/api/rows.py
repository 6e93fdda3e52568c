"""Animals and studies as the API shows them, read as plain rows.

A page is one statement for its rows with the joined columns (species, breed, the current
weight; a study's counts, modalities and thumbnail), plus one per related table (owners,
external ids), and a dict per row built by a plain function. Model instances and a nested
ModelSerializer per row cost more than the database did: most of a 100-row page's time.

These functions are the API's one way to show an animal or a study: the lists call them on a
page, the serializers' ``to_representation`` on a single record. The serializers still declare
the fields, which the OpenAPI schema is built from and input is validated against.
"""
from collections import defaultdict
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, OuterRef, Subquery
from django.urls import reverse
from django.utils.timezone import localtime

from imaging.models import Series
from patients.models import Ownership, PatientExternalId, WeightRecord

KG = Decimal("0.001")  # WeightRecord.kg's places


def iso_datetime(value):
    """A date-time as DRF writes it: in the current time zone, ISO 8601, UTC as ``Z``."""
    if value is None:
        return None
    text = localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def iso(value):
    """A date or a time as DRF writes it."""
    return value.isoformat() if value is not None else None


# --- animals ----------------------------------------------------------------------------------

PATIENT_COLUMNS = (
    "id", "patient_id", "name", "breed_text", "sex", "neutered", "birth_date", "birth_date_estimated", "colour",
    "microchip", "deceased", "deceased_on", "notes", "updated", "species__code", "species__scheme", "species__name",
    "breed__code", "breed__scheme", "breed__name", "current_weight_kg",
)  # fmt: skip


def patient_rows(patients):
    """The animals of a queryset as dicts of PATIENT_COLUMNS: species and breed joined, the
    current weight (Patient.current_weight's rule: the newest measurement) read with the row."""
    newest = WeightRecord.objects.filter(patient=OuterRef("pk")).order_by("-measured_on", "-id")
    return patients.annotate(current_weight_kg=Subquery(newest.values("kg")[:1])).values(*PATIENT_COLUMNS)


def patients_json(rows):
    """The API's body for each row of ``patient_rows``, their owners and external ids read in
    one statement each."""
    ids = [row["id"] for row in rows]
    owners, external_ids = defaultdict(list), defaultdict(list)
    if ids:
        links = Ownership.objects.filter(patient_id__in=ids).order_by("-is_primary", "id")
        for patient_id, owner_id, role, primary in links.values_list("patient_id", "owner_id", "role", "is_primary"):
            owners[patient_id].append({"owner": owner_id, "role": role, "primary": primary})
        found = PatientExternalId.objects.filter(patient_id__in=ids).order_by("id")
        for patient_id, system, value in found.values_list("patient_id", "system", "value"):
            external_ids[patient_id].append({"system": system, "value": value})
    return [patient_json(row, owners[row["id"]], external_ids[row["id"]]) for row in rows]


def patient_json(row, owners, external_ids):
    weight = row["current_weight_kg"]
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
        "owners": owners,
        "updated": iso_datetime(row["updated"]),
        "species": {"code": row["species__code"], "system": row["species__scheme"], "name": row["species__name"]},
        "breed": (
            {"code": row["breed__code"], "system": row["breed__scheme"], "name": row["breed__name"]}
            if row["breed__code"] is not None
            else None
        ),
        # (SQLite hands the subquery's decimal back unscaled: 31.4000000000000.)
        "weight_kg": str(Decimal(weight).quantize(KG)) if weight is not None else None,
        "external_ids": external_ids,
    }


# --- studies ----------------------------------------------------------------------------------

STUDY_COLUMNS = (
    "id", "study_instance_uid", "patient_id", "order_id", "link", "accession_number", "study_date", "study_time",
    "description", "referring_physician", "series_count", "instance_count", "received_at", "updated",
)  # fmt: skip


def study_rows(studies):
    """The studies of a queryset as dicts of STUDY_COLUMNS, with their series and image counts."""
    return studies.annotate(
        series_count=Count("series", distinct=True), instance_count=Count("series__instances")
    ).values(*STUDY_COLUMNS)


def studies_json(rows):
    """The API's body for each row of ``study_rows``; their series (for the modalities and the
    thumbnail) read in one statement."""
    series = defaultdict(list)
    ids = [row["id"] for row in rows]
    if ids:
        found = Series.objects.filter(study_id__in=ids).order_by("series_number", "id")
        for study_id, pk, modality, thumbnail_key in found.values_list("study_id", "id", "modality", "thumbnail_key"):
            series[study_id].append((pk, modality, thumbnail_key))
    viewer, thumbnail = link_around_id("study_detail"), link_around_id("series_thumbnail")
    return [study_json(row, series[row["id"]], viewer, thumbnail) for row in rows]


def link_around_id(name):
    """A page's absolute URL by name, as the parts before and after the record's id: reversed
    once a page rather than twice a row (reverse() costs more than the rest of a row)."""
    before, _, after = reverse(name, args=[123456789]).partition("123456789")
    return settings.SITE_URL + before, after


def study_json(row, series, viewer, thumbnail):
    """``series``: (id, modality, thumbnail key) in series order; ``viewer`` and ``thumbnail``:
    link_around_id's parts."""
    shown = next((pk for pk, _, key in series if key), None)
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
        "modalities": sorted({modality for _, modality, _ in series if modality}),
        "series_count": row["series_count"],
        "instance_count": row["instance_count"],
        "received_at": iso_datetime(row["received_at"]),
        "viewer_url": f"{viewer[0]}{row['id']}{viewer[1]}",
        "thumbnail_url": f"{thumbnail[0]}{shown}{thumbnail[1]}" if shown is not None else None,
        "updated": iso_datetime(row["updated"]),
    }
