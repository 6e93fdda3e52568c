"""The Modality Worklist's reads: the orders matching a C-FIND identifier, as the DICOM node
(imaging/dicom/net/handlers.py) answers them; the matching itself is imaging/dicom/records/matching.py."""

from typing import Any

from django.db.models import F, FilteredRelation, OuterRef, Q, QuerySet
from pydicom.dataset import Dataset

from imaging.models import ImagingOrder
from patients.models import WeightRecord
from vetclinic.db import RowsById


def worklist_items(*, identifier: Dataset) -> QuerySet[ImagingOrder]:
    """Orders matching a Modality Worklist identifier (imaging/dicom/records/matching.py), the
    database doing the matching; only orders still to be done unless a step status is asked."""
    from imaging.dicom.records.matching import worklist_filter

    condition, status_asked = worklist_filter(identifier)
    orders = ImagingOrder.objects.filter(condition)
    if not status_asked:
        orders = orders.filter(status__in=ImagingOrder.WORKLIST_STATUSES)
    return _worklist_joined(orders)


def _worklist_joined(orders: QuerySet[ImagingOrder]) -> QuerySet[ImagingOrder]:
    """``orders`` with what their worklist items need joined, in worklist order: the animal's
    primary owner and last weight come in the same row (worklist_rows reads them)."""
    return (
        orders.annotate(
            primary_ownership=FilteredRelation(
                "patient__ownerships", condition=Q(patient__ownerships__is_primary=True)
            ),
            last_weight=WeightRecord.newest_kg(OuterRef("patient_id")),
        )
        # django-stubs does not know a FilteredRelation (primary_ownership) can be followed.
        .select_related(  # type: ignore[misc]
            "patient__species", "patient__breed", "procedure", "station", "primary_ownership__owner"
        )
        .order_by("scheduled_start", "id")
    )


# A row: WORKLIST_COLUMNS by name, each the value of its column (dicts, as values() gives them).
def worklist_rows(*, identifier: Dataset) -> list[dict[str, Any]]:
    """The matching orders as plain rows of exactly what their worklist items are made of
    (datasets.WORKLIST_COLUMNS), for datasets.worklist_elements: no model objects to make,
    fewer columns to read.

    Two statements, however many orders match: the matching one names only the tables its
    keys need, and the rows are then read by id with one statement whose text never changes.
    As one statement, PostgreSQL planned the nine-table join for every name query (~3.7 ms,
    more than running it), and Django built and compiled it for every query (~40% of a
    C-FIND's CPU in the listener)."""
    ids = list(worklist_matches(identifier=identifier))
    if not ids:
        return []
    rows = WORKLIST_ROWS_BY_ID.rows(ids)
    for row in rows:
        del row["order_id"]
    return rows


def worklist_matches(*, identifier: Dataset) -> QuerySet[ImagingOrder, int]:
    """The ids of the orders matching a worklist identifier, in worklist order: only the
    tables the identifier's keys need are joined."""
    from imaging.dicom.records.matching import worklist_filter

    condition, status_asked = worklist_filter(identifier)
    orders = ImagingOrder.objects.filter(condition)
    if not status_asked:
        orders = orders.filter(status__in=ImagingOrder.WORKLIST_STATUSES)
    return orders.order_by("scheduled_start", "id").values_list("id", flat=True)


def _worklist_rows_by_id(condition: Q | Any) -> QuerySet[ImagingOrder, dict[str, Any]]:
    from imaging.dicom.records.datasets import WORKLIST_COLUMNS

    rows: QuerySet[ImagingOrder, dict[str, Any]] = _worklist_joined(
        ImagingOrder.objects.filter(condition)
    ).values(*WORKLIST_COLUMNS, order_id=F("id"))
    return rows


# The worklist rows of orders by id (vetclinic/db.py): the query of
# ``worklist_items(...).values(*WORKLIST_COLUMNS)``, compiled once per process.
WORKLIST_ROWS_BY_ID = RowsById(_worklist_rows_by_id, key="order_id")
