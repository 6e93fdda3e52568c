"""C-FIND matching (PS3.4 C.2.2.2), done by the database: the primitives (single value,
wildcard, range, UID list, universal; person names) that the Modality Worklist (PS3.4 K.2.2.1,
``worklist_filter`` below) and Query/Retrieve (imaging/archive/query.py, PS3.4 C.6) share.

``worklist_filter`` turns a C-FIND identifier into a Django ``Q`` over ImagingOrder, so that the
database answers from its indexes; nothing loads every order into Python. Each matching kind
cites its section. An identifier we cannot make sense of raises ``MatchingError`` (the handler
answers 0xA900 with the message as Error Comment).

Supported matching keys (K.6-1 "R" keys and the useful "O" ones):
  top level: PatientName, PatientID, AccessionNumber, RequestedProcedureID, StudyInstanceUID,
  ReferringPhysicianName;
  in ScheduledProcedureStepSequence: ScheduledStationAETitle, ScheduledStationName, Modality,
  ScheduledProcedureStepStartDate + ScheduledProcedureStepStartTime,
  ScheduledPerformingPhysicianName, ScheduledProcedureStepID, ScheduledProcedureStepStatus.
Other keys are return keys only: they are answered, not matched.
"""

import re
from datetime import date, datetime, time, timedelta
from typing import Protocol, TypeVar

from django.db.models import F, Q
from django.utils.timezone import get_current_timezone, make_aware
from pydicom.dataset import Dataset

from imaging.models import ImagingOrder
from vetclinic.db import AnyOf, StartsWith

Status = ImagingOrder.Status

# Scheduled Procedure Step Status (0040,0020) <-> our order status.
SPS_STATUS = {
    Status.SCHEDULED: "SCHEDULED",
    Status.ARRIVED: "ARRIVED",
    Status.IN_PROGRESS: "STARTED",
    Status.COMPLETED: "COMPLETED",
    Status.REPORTED: "COMPLETED",
    Status.DISCONTINUED: "DISCONTINUED",
    Status.CANCELLED: "CANCELED",
}


Bound = TypeVar("Bound", date, time, covariant=True)


class _Parse(Protocol[Bound]):
    """Reads one end of a range: ``date_bound`` or ``time_bound``."""

    def __call__(self, text: str, keyword: str, *, end: bool) -> Bound: ...


class MatchingError(ValueError):
    """The identifier is malformed; the message names the attribute (an Error Comment), first."""

    @property
    def keyword(self) -> str:
        """The attribute the message names (QIDO-RS answers 400 naming its parameter)."""
        return str(self).split(":")[0].split(" ")[0]


def key_value(ds: Dataset, keyword: str) -> str | None:
    """The key's value as text, or None for universal matching (absent or zero length,
    C.2.2.2.3). A lone '*' is universal too."""
    if keyword not in ds:
        return None
    value = ds[keyword].value
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or value.__class__.__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    text = str(value).strip()
    return None if text in ("", "*") else text


def has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


def wildcard_regex(pattern: str) -> str:
    """DICOM wildcards (C.2.2.2.4): '*' any run of characters, '?' exactly one."""
    return "^" + "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + "$"


def prefix_match(field: str, literal: str) -> Q:
    """``field`` starts with ``literal`` (case-sensitive), as a range the field's index answers,
    with the literal as a parameter, so that the listener's prepared statement keeps one plan
    for every prefix (vetclinic/db.py StartsWith). (With LIKE $1 PostgreSQL planned every name
    query anew, ~3.6 ms of a 9-match query.)"""
    return Q(StartsWith(F(field), literal))


# A string key's pattern as the kind of condition it makes (text_pattern) and its parts, the
# condition's parameters: the kind shapes the statement, the parts are its values (so that a
# statement of one kind is compiled once and run with any parts, imaging/archive/query.py).
TextPattern = tuple[str, tuple[str, ...]]


def text_pattern(pattern: str) -> TextPattern:
    """Single value (C.2.2.2.1) or wildcard (C.2.2.2.4) matching of a string attribute, as
    (kind, parts): ``exact`` (the value), ``prefix`` (a literal prefix followed by '*'),
    ``contains`` ('*' literal '*'), ``regex`` (the wildcards as a regular expression) and
    ``regex_prefix`` (the same, with its literal prefix)."""
    if not has_wildcard(pattern):
        return "exact", (pattern,)
    literal = re.split(r"[*?]", pattern, maxsplit=1)[0]  # what comes before the first wildcard
    if pattern == literal + "*":
        return "prefix", (literal,)
    inner = pattern[1:-1]
    if pattern.startswith("*") and pattern.endswith("*") and inner and not has_wildcard(inner):
        return "contains", (inner,)
    if literal:
        return "regex_prefix", (wildcard_regex(pattern), literal)
    return "regex", (wildcard_regex(pattern),)


def text_condition(field: str, kind: str, parts: tuple[str, ...], *, case_insensitive: bool = False) -> Q:
    """The condition of a text_pattern on ``field``. The common kinds go to lookups the
    database serves from an index: exact, and a literal prefix (LIKE 'ABC%' or its range);
    a regular expression has its literal prefix as an indexed condition in front of it."""
    i = "i" if case_insensitive else ""
    if kind == "exact":
        return Q(**{f"{field}__{i}exact": parts[0]})
    if kind == "prefix":
        return Q(**{f"{field}__istartswith": parts[0]}) if case_insensitive else prefix_match(field, parts[0])
    if kind == "contains":
        return Q(**{f"{field}__{i}contains": parts[0]})
    condition = Q(**{f"{field}__{i}regex": parts[0]})
    if kind == "regex_prefix":
        literal = parts[1]
        condition &= (
            Q(**{f"{field}__istartswith": literal}) if case_insensitive else prefix_match(field, literal)
        )
    return condition


def text_match(field: str, pattern: str, *, upper: bool = False, case_insensitive: bool = False) -> Q:
    """Single value (C.2.2.2.1) or wildcard (C.2.2.2.4) matching of a string attribute
    (text_pattern, text_condition)."""
    if upper:
        pattern = pattern.upper()
    return text_condition(field, *text_pattern(pattern), case_insensitive=case_insensitive)


def person_name_pattern(pattern: str) -> str:
    """Person names match case-insensitively (C.2.2.2.1, the usual choice for PN); trailing
    empty components are not significant ('SMITH^REX^^' is 'SMITH^REX')."""
    return pattern.split("=")[0].rstrip("^")


def uids_of(text: str, keyword: str) -> list[str]:
    """The backslash-separated UIDs of a List of UID matching key (C.2.2.2.2), checked."""
    uids = [uid.strip() for uid in text.split("\\") if uid.strip()]
    for uid in uids:
        if len(uid) > 64 or not re.fullmatch(r"[0-9.]+", uid):
            raise MatchingError(f"{keyword}: '{uid[:30]}' is not a UID")
    return uids


def uid_list(field: str, text: str, keyword: str) -> Q:
    """List of UID matching (C.2.2.2.2): any of the backslash-separated UIDs (the list one
    parameter: one statement text for any number of UIDs, vetclinic/db.py AnyOf)."""
    return Q(AnyOf(F(field), uids_of(text, keyword)))


def date_value(text: str, keyword: str) -> date:
    """DA (PS3.5 6.2): YYYYMMDD; the ACR-NEMA YYYY.MM.DD is still sent by some old devices."""
    digits = text.replace(".", "")
    try:
        if len(digits) != 8:
            raise ValueError
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise MatchingError(f"{keyword}: '{text[:20]}' is not a date") from None


def time_bound(text: str, keyword: str, *, end: bool) -> time:
    """TM (PS3.5 6.2): HH[MM[SS[.F{1,6}]]]. A value of lower precision stands for its whole
    span; as the end of a range it is the span's last moment ('10' ends at 10:59:59.999999)."""
    clean = text.replace(":", "")
    match = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?", clean)
    if not match:
        raise MatchingError(f"{keyword}: '{text[:20]}' is not a time")
    hh, mm, ss, fraction = match.groups()
    try:
        start = time(int(hh), int(mm or 0), int(ss or 0), int((fraction or "0").ljust(6, "0")))
    except ValueError:
        raise MatchingError(f"{keyword}: '{text[:20]}' is not a time") from None
    if not end:
        return start
    if fraction:
        return start
    if ss:
        return start.replace(microsecond=999999)
    if mm:
        return start.replace(second=59, microsecond=999999)
    return start.replace(minute=59, second=59, microsecond=999999)


def value_range(text: str, parse: _Parse[Bound], keyword: str) -> tuple[Bound | None, Bound | None]:
    """Range matching (C.2.2.2.5): 'A-B', 'A-' (from A), '-B' (until B), or a single value."""
    if text.count("-") > 1:
        raise MatchingError(f"{keyword}: '{text[:20]}' is not a range")
    if "-" not in text:
        return parse(text, keyword, end=False), parse(text, keyword, end=True)
    low, high = text.split("-")
    if not low and not high:
        raise MatchingError(f"{keyword}: '-' is not a range")
    return (parse(low, keyword, end=False) if low else None, parse(high, keyword, end=True) if high else None)


def date_bound(text: str, keyword: str, *, end: bool) -> date:
    return date_value(text, keyword)


def date_match(field: str, text: str, keyword: str) -> Q:
    """Single value or range matching (C.2.2.2.1, C.2.2.2.5) of a DA attribute kept as a date
    column. An open end leaves the bound out, so a study without a date matches no range."""
    return between(field, *value_range(text, date_bound, keyword))


def time_match(field: str, text: str, keyword: str) -> Q:
    """Single value or range matching of a TM attribute kept as a time column: a value of lower
    precision stands for its whole span (C.2.2.2.5, time_bound)."""
    return between(field, *value_range(text, time_bound, keyword))


def range_form(text: str) -> str | None:
    """Which form of range matching a DA or TM key uses (C.2.2.2.5): 'A-B', 'A-' or '-B'; None
    for a single value."""
    if "-" not in text:
        return None
    low, _, high = text.partition("-")
    return ("A" if low.strip() else "") + "-" + ("B" if high.strip() else "")


def date_time_between(
    date_field: str,
    time_field: str,
    dates: tuple[date | None, date | None],
    times: tuple[time | None, time | None],
) -> Q:
    """A date range and a time range of the same form matched as one date-time range
    (C.2.2.2.5.4, when combined date-time matching was agreed, C.5.1.1): '20250705-20250707'
    with '1000-1800' is from 10:00 on the 5th to 18:00 on the 7th, over a date column and a time
    column (the ends as value_range reads them). On a bound's own day the time decides; a study without a time matches there only
    if the range is open on that side."""
    (d_low, d_high), (t_low, t_high) = dates, times
    condition = Q()
    if d_low is not None:
        on_day = Q(**{date_field: d_low}) & (Q(**{f"{time_field}__gte": t_low}) if t_low is not None else Q())
        condition &= Q(**{f"{date_field}__gt": d_low}) | on_day
    if d_high is not None:
        on_day = Q(**{date_field: d_high}) & (
            Q(**{f"{time_field}__lte": t_high}) if t_high is not None else Q()
        )
        condition &= Q(**{f"{date_field}__lt": d_high}) | on_day
    return condition


def between(field: str, low: date | time | None, high: date | time | None) -> Q:
    """``field`` within [low, high]; an end that is None is left open."""
    condition = Q()
    if low is not None:
        condition &= Q(**{f"{field}__gte": low})
    if high is not None:
        condition &= Q(**{f"{field}__lte": high})
    return condition


def integer_value(text: str, keyword: str) -> int:
    """The value of an IS key (C.2.2.2.1: single value; IS allows no wildcards)."""
    try:
        return int(text.strip())
    except ValueError:
        raise MatchingError(f"{keyword}: '{text[:20]}' is not an integer") from None


def integer_match(field: str, text: str, keyword: str) -> Q:
    """Single value matching of an IS attribute (C.2.2.2.1)."""
    return Q(**{field: integer_value(text, keyword)})


def values_of(text: str) -> list[str]:
    """The values of a multi-valued matching key (backslash-separated, PS3.5 6.2)."""
    return [value.strip() for value in text.split("\\") if value.strip()]


def literal_matches(pattern: str, value: str, *, case_insensitive: bool = False) -> bool:
    """Whether a value we hold as a constant (not a column) matches a single value or wildcard
    key (C.2.2.2.1, C.2.2.2.4), by the rules text_match gives the database."""
    flags = re.IGNORECASE if case_insensitive else 0
    return re.fullmatch(wildcard_regex(pattern)[1:-1], value, flags) is not None


def _start_match(date_text: str | None, time_text: str | None) -> Q:
    """Scheduled Procedure Step Start Date and Time, as one combined date-time range
    (C.2.2.2.5.1: the date range with the time range's bounds at its ends), over the single
    ``scheduled_start`` column. Dates and times are the clinic's local ones (TIME_ZONE)."""
    tz = get_current_timezone()
    d_low, d_high = (
        value_range(date_text, date_bound, "ScheduledProcedureStepStartDate") if date_text else (None, None)
    )
    if time_text is None:
        low = make_aware(datetime.combine(d_low, time.min), tz) if d_low else None
        high = make_aware(datetime.combine(d_high + timedelta(days=1), time.min), tz) if d_high else None
        condition = Q()
        if low:
            condition &= Q(scheduled_start__gte=low)
        if high:
            condition &= Q(scheduled_start__lt=high)
        return condition
    t_low, t_high = value_range(time_text, time_bound, "ScheduledProcedureStepStartTime")
    if date_text is None:
        # Time of day on any date: no index helps, but no modality sends only a time.
        condition = Q()
        if t_low:
            condition &= Q(scheduled_start__time__gte=t_low)
        if t_high:
            condition &= Q(scheduled_start__time__lte=t_high)
        return condition
    condition = Q()
    if d_low:
        condition &= Q(scheduled_start__gte=make_aware(datetime.combine(d_low, t_low or time.min), tz))
    if d_high:
        condition &= Q(scheduled_start__lte=make_aware(datetime.combine(d_high, t_high or time.max), tz))
    return condition


def _sps_status(text: str) -> Q:
    wanted = {s.strip().upper() for s in text.split("\\")}
    statuses = [ours for ours, theirs in SPS_STATUS.items() if theirs in wanted]
    if not statuses:
        raise MatchingError(f"ScheduledProcedureStepStatus: '{text[:20]}' is not a step status")
    return Q(status__in=statuses)


def _sps_item(ds: Dataset) -> Dataset | None:
    """The one item of Scheduled Procedure Step Sequence, or None (C.2.2.2.6: sequence
    matching on the keys of its single item; a zero-length sequence is universal)."""
    if "ScheduledProcedureStepSequence" not in ds:
        return None
    sequence = ds.ScheduledProcedureStepSequence
    if sequence is None or len(sequence) == 0:
        return None
    if len(sequence) > 1:
        raise MatchingError("ScheduledProcedureStepSequence: one item only (C.2.2.2.6)")
    item: Dataset = sequence[0]
    return item


def worklist_filter(identifier: Dataset) -> tuple[Q, bool]:
    """(condition, status_asked) for a Modality Worklist C-FIND identifier.

    ``status_asked`` is True when the query names step statuses; otherwise the caller offers
    only orders still to be done (ImagingOrder.WORKLIST_STATUSES).
    """
    condition = Q()
    status_asked = False

    value = key_value(identifier, "PatientName")
    if value is not None:
        condition &= text_match("patient__dicom_name_key", person_name_pattern(value), upper=True)
    value = key_value(identifier, "PatientID")
    if value is not None:
        condition &= text_match("patient__patient_id", value)
    value = key_value(identifier, "AccessionNumber")
    if value is not None:
        condition &= text_match("accession_number", value)
    value = key_value(identifier, "RequestedProcedureID")
    if value is not None:
        condition &= text_match("requested_procedure_id", value)
    value = key_value(identifier, "StudyInstanceUID")
    if value is not None:
        condition &= uid_list("study_instance_uid", value, "StudyInstanceUID")
    value = key_value(identifier, "ReferringPhysicianName")
    if value is not None:
        condition &= text_match("referring_vet", person_name_pattern(value), case_insensitive=True)

    item = _sps_item(identifier)
    if item is not None:
        value = key_value(item, "ScheduledStationAETitle")
        if value is not None:
            # AE is multi-valued: any of the titles (C.2.2.2.2 applies the list to UIDs; we
            # extend it to the AE titles a shared worklist query may carry).
            titles = [t.strip() for t in value.split("\\") if t.strip()]
            if len(titles) > 1:
                condition &= Q(station__ae_title__in=titles)
            else:
                condition &= text_match("station__ae_title", titles[0])
        value = key_value(item, "ScheduledStationName")
        if value is not None:
            condition &= text_match("station__station_name", value, case_insensitive=True)
        value = key_value(item, "Modality")
        if value is not None:
            condition &= text_match("modality_type", value.upper())
        condition &= _start_match(
            key_value(item, "ScheduledProcedureStepStartDate"),
            key_value(item, "ScheduledProcedureStepStartTime"),
        )
        value = key_value(item, "ScheduledPerformingPhysicianName")
        if value is not None:
            condition &= text_match("performing_vet", person_name_pattern(value), case_insensitive=True)
        value = key_value(item, "ScheduledProcedureStepID")
        if value is not None:
            condition &= text_match("scheduled_step_id", value)
        value = key_value(item, "ScheduledProcedureStepStatus")
        if value is not None:
            condition &= _sps_status(value)
            status_asked = True
    return condition, status_asked


# The keys worklist_filter matches; a query that sets any other key gets its answers with
# Pending 0xFF01, "optional keys not supported" (PS3.4 K.4.1.2.2).
MATCHED_KEYS = {"PatientName", "PatientID", "AccessionNumber", "RequestedProcedureID", "StudyInstanceUID",
                "ReferringPhysicianName", "ScheduledProcedureStepSequence", "SpecificCharacterSet"}  # fmt: skip
MATCHED_STEP_KEYS = {"ScheduledStationAETitle", "ScheduledStationName", "Modality", "ScheduledProcedureStepStartDate",
                     "ScheduledProcedureStepStartTime", "ScheduledPerformingPhysicianName",
                     "ScheduledProcedureStepID", "ScheduledProcedureStepStatus"}  # fmt: skip


def unmatched_keys(identifier: Dataset) -> list[str]:
    """Keys with a value that we answer but do not match on."""
    keys = [
        e.keyword
        for e in identifier
        if e.keyword not in MATCHED_KEYS and e.VR != "SQ" and key_value(identifier, e.keyword)
    ]
    item = _sps_item(identifier)
    if item is not None:
        keys += [
            e.keyword
            for e in item
            if e.keyword not in MATCHED_STEP_KEYS and e.VR != "SQ" and key_value(item, e.keyword)
        ]
    return keys
