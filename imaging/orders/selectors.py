"""Reads about orders that the scheduling pages, the day board and the API share."""

from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet
from django.utils.timezone import get_current_timezone, make_aware

from imaging.models import ImagingOrder, Modality, Procedure
from imaging.studies.selectors import studies_listed
from patients.models import Patient, Species

Status = ImagingOrder.Status
# What occupies a station: the day board and the double-booking warning count these.
BUSY = [Status.SCHEDULED, Status.ARRIVED, Status.IN_PROGRESS]


def procedures_for(*, species: Species | int | None) -> QuerySet[Procedure]:
    """Active procedures for this species (those listing no species apply to all)."""
    return (
        Procedure.objects.filter(active=True)
        .filter(Q(species=species) | Q(species__isnull=True))
        .distinct()
        .order_by("modality_type", "name")
    )


def stations(*, modality_type: str | None = None) -> QuerySet[Modality]:
    found = Modality.objects.filter(active=True)
    return found.filter(modality_type=modality_type) if modality_type else found


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The clinic's local day as an aware [start, end) pair."""
    start = make_aware(datetime.combine(day, datetime.min.time()), get_current_timezone())
    return start, make_aware(
        datetime.combine(day + timedelta(days=1), datetime.min.time()), get_current_timezone()
    )


def day_orders(*, day: date, station: Modality | None = None) -> QuerySet[ImagingOrder]:
    """The orders of one day (every status), for the day board, by start time."""
    start, end = day_bounds(day)
    orders = ImagingOrder.objects.filter(scheduled_start__gte=start, scheduled_start__lt=end)
    if station is not None:
        orders = orders.filter(station=station)
    return orders.select_related("patient__species", "procedure", "station").prefetch_related(
        "patient__ownerships__owner"
    )


def station_conflicts(
    *, station: Modality | None, start: datetime, minutes: int, exclude: ImagingOrder | None = None
) -> list[ImagingOrder]:
    """Orders occupying the station that overlap [start, start + minutes)."""
    if station is None:
        return []
    end = start + timedelta(minutes=minutes)
    orders = ImagingOrder.objects.filter(
        station=station,
        scheduled_start__lt=end,
        scheduled_start__gt=start - timedelta(hours=12),  # bounded, so the index serves it
        status__in=BUSY,
    ).select_related("patient", "procedure")
    if exclude is not None:
        orders = orders.exclude(pk=exclude.pk)
    return [order for order in orders if order.scheduled_end > start]


def free_slots(
    *, station: Modality, day: date, minutes: int, exclude: ImagingOrder | None = None
) -> list[datetime]:
    """Start times in clinic hours on ``day`` when ``station`` is free for ``minutes``
    (``exclude``: an order being rescheduled, whose own slot counts as free)."""
    opens = datetime.strptime(settings.CLINIC_OPENS, "%H:%M").time()
    closes = datetime.strptime(settings.CLINIC_CLOSES, "%H:%M").time()
    tz = get_current_timezone()
    start = make_aware(datetime.combine(day, opens), tz)
    end = make_aware(datetime.combine(day, closes), tz)
    orders = ImagingOrder.objects.filter(
        station=station,
        status__in=BUSY,
        scheduled_start__lt=end,
        scheduled_start__gt=start - timedelta(hours=12),
    )
    if exclude is not None:
        orders = orders.exclude(pk=exclude.pk)
    busy = [(o.scheduled_start, o.scheduled_end) for o in orders]
    slots: list[datetime] = []
    slot = start
    step = timedelta(minutes=settings.SLOT_MINUTES)
    while slot + timedelta(minutes=minutes) <= end:
        slot_end = slot + timedelta(minutes=minutes)
        if not any(b_start < slot_end and slot < b_end for b_start, b_end in busy):
            slots.append(slot)
        slot += step
    return slots


def patient_orders(*, patient: Patient) -> QuerySet[ImagingOrder]:
    return (
        ImagingOrder.objects.filter(patient=patient)
        .select_related("procedure", "station")
        .order_by("-scheduled_start")
    )


def order_detail(*, pk: int) -> ImagingOrder:
    return (
        ImagingOrder.objects.select_related(
            "patient__species", "patient__breed", "procedure", "station", "visit"
        )
        .prefetch_related(
            "status_changes",
            "performed_steps",
            "patient__ownerships__owner",
            Prefetch("studies", queryset=studies_listed().order_by("study_date", "study_time", "id")),
        )  # fmt: skip
        .get(pk=pk)
    )
