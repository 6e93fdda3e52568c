"""The clinic's clock: what "now" and "today" are when the code decides something by them.

Which free times are still ahead, which day the board and the order form open on, whether a
start time or a birth date lies in the future: these ask here, never the system clock, so that
a test (or a demonstration) can set the time. ``settings.CLOCK_NOW`` (environment
``VETPACS_NOW``, ISO 8601, e.g. ``2026-11-23T09:00:00+00:00``; without an offset, in
``TIME_ZONE``) pins it for every process that reads the settings: a test, its live server
thread, and the listeners and workers it starts. Empty (the default): the real time.

Timestamps of what happened (created, updated, received) are the real time, not this.
"""

from datetime import date, datetime

from django.conf import settings
from django.utils import timezone


def now() -> datetime:
    pinned = getattr(settings, "CLOCK_NOW", "")
    if not pinned:
        return timezone.now()
    moment = pinned if isinstance(pinned, datetime) else datetime.fromisoformat(pinned)
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def localnow() -> datetime:
    """Now in the clinic's time zone (TIME_ZONE)."""
    return timezone.localtime(now())


def today() -> date:
    """The clinic's date today."""
    return localnow().date()
