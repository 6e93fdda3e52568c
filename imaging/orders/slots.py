"""Free times: the block under the order and reschedule forms (free windows, clashes, a time
that has passed) and the day board's free windows, in the clinic's hours and by its clock."""

from datetime import date, datetime, time, timedelta
from typing import TypedDict

from django.conf import settings
from django.utils.timezone import make_aware

from imaging.models import ImagingOrder, Modality
from imaging.orders import selectors
from imaging.orders import services as orders
from vetclinic import clock


class SlotsContext(TypedDict, total=False):
    """What the free-times block is drawn from (templates/imaging/orders/_slots.html)."""

    station: Modality | None
    day: date | None
    book_anyway: bool
    past_ok: bool | None
    passed: bool  # the chosen time has passed
    slots: list[datetime]  # free start times still ahead
    windows: list[tuple[datetime, datetime]]
    past: bool  # the day has passed
    closed: bool  # the clinic has closed for the day
    next_open: date
    conflicts: list[ImagingOrder]  # what the chosen time clashes with


def slots_context(
    *,
    station: Modality | None,
    day: date | None,
    clock: time | None,
    minutes: int | None,
    book_anyway: bool,
    past_ok: bool | None = None,
    exclude: ImagingOrder | None = None,
) -> SlotsContext:
    """The station's free windows on the day, what clashes with the chosen time, and whether
    that time has passed."""
    context: SlotsContext = {"station": station, "day": day, "book_anyway": book_anyway, "past_ok": past_ok}
    if day is not None and clock is not None:
        start = make_aware(datetime.combine(day, clock))
        context["passed"] = orders.start_passed(start)
    if station is None or day is None:
        return context
    minutes = minutes or settings.SLOT_MINUTES
    context["slots"] = free_ahead(station, day, minutes, exclude)
    context["windows"] = free_windows(context["slots"], minutes)
    context["past"] = day < _today()
    context["closed"] = day == _today() and not open_ahead(day)
    context["next_open"] = next_open_day()
    if clock is not None:
        context["conflicts"] = selectors.station_conflicts(
            station=station, start=start, minutes=minutes, exclude=exclude
        )
    return context


def _now() -> datetime:
    return clock.now()


def _today() -> date:
    return clock.today()


def _hours(day: date) -> tuple[datetime, datetime]:
    """The clinic's opening and closing on ``day``, aware."""
    opens = datetime.strptime(settings.CLINIC_OPENS, "%H:%M").time()
    closes = datetime.strptime(settings.CLINIC_CLOSES, "%H:%M").time()
    return make_aware(datetime.combine(day, opens)), make_aware(datetime.combine(day, closes))


def open_ahead(day: date) -> bool:
    """Whether a booking of one slot still fits in the clinic's hours of ``day``."""
    return _hours(day)[1] - timedelta(minutes=settings.SLOT_MINUTES) >= _now()


def next_open_day() -> date:
    """Today while the clinic is open (or still to open), else tomorrow: the day the order form
    and the board offer after closing time."""
    today = _today()
    return today if open_ahead(today) else today + timedelta(days=1)


def free_ahead(
    station: Modality, day: date, minutes: int, exclude: ImagingOrder | None = None
) -> list[datetime]:
    """The station's free start times on the day that are still ahead."""
    current = _now()
    free = selectors.free_slots(station=station, day=day, minutes=minutes, exclude=exclude)
    return [slot for slot in free if slot >= current]


def free_windows(slots: list[datetime], minutes: int) -> list[tuple[datetime, datetime]]:
    """Consecutive free start times as (first start, end of the last booking that fits)."""
    step = timedelta(minutes=settings.SLOT_MINUTES)
    windows: list[list[datetime]] = []  # [first, last] of each run
    for slot in slots:
        if windows and slot - windows[-1][1] == step:
            windows[-1][1] = slot
        else:
            windows.append([slot, slot])
    return [(first, last + timedelta(minutes=minutes)) for first, last in windows]
