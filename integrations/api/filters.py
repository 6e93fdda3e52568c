"""The lists' query parameters as django-filter FilterSets: each parameter declared once, with
what it takes, the 400 naming it when a value is not that, its lookup, and its schema (the
OpenAPI parameters are read from these by drf-spectacular's django-filter extension).

A typed parameter given empty (``?date=``) is a 400, not "no filter": a client that sends one
has a bug worth naming. A text parameter given empty filters nothing, as it always did.

The patient and study lists run their pages as statements compiled once (selectors.py,
vetclinic/db.py). For them the view only validates and cleans the parameters with the
FilterSet (``filter_values``) and hands the cleaned values to the list's compiled pages, whose
queryset is built with the same FilterSet's filters (``narrow``) once per shape. Running the
FilterSet per request (DjangoFilterBackend's way) would build and compile the page's queryset
on every request (~1.2 ms, more than the page's SQL takes): what the compiled statements save.
"""

import datetime as dt  # (as dt: OrderFilter has a filter named date)
from collections.abc import Iterable
from datetime import UTC
from functools import cache
from typing import Any, TypeVar, cast

import django_filters
from django import forms
from django.db.models import QuerySet
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from imaging.models import ImagingOrder, Report, Series, Study
from imaging.orders.selectors import day_bounds
from patients.models import Breed, CodeMapping, Owner, Patient, Visit
from patients.search import query_words
from patients.selectors import patient_ids_matching

# A record id: what urls.py's RecordId takes in a path.
RECORD_ID = {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}


# A django-filter Filter (django-filter has no type hints: its classes are Any here).
Filter = TypeVar("Filter", bound=django_filters.Filter)


# A queryset, narrowed to one of the same kind (a list's rows stay its rows).
Records = TypeVar("Records", bound=QuerySet[Any, Any])


def schema(filter_: Filter, openapi: dict[str, Any], description: str | None = None) -> Filter:
    """``filter_`` with its OpenAPI schema said outright (the extension otherwise guesses it from
    the model field, and cannot know what our own form fields take)."""
    return extend_schema_field({**openapi, **({"description": description} if description else {})})(filter_)


# --- form fields: what a query parameter's text must be ----------------------------------------


class RecordIdField(forms.Field):
    """Digits that fit the database's integers (longer ones would overflow in the driver: a 500)."""

    def to_python(self, value: str | None) -> int | None:
        if value is None:
            return None
        if not (value.isascii() and value.isdigit()) or len(value) > 18:
            raise forms.ValidationError("A record id (a whole number).")
        return int(value)


class DayField(forms.Field):
    def to_python(self, value: str | None) -> dt.date | None:
        if value is None:  # (given, even empty, it must be a date)
            return None
        try:
            day = parse_date(value)
        except ValueError:  # well formed, but no such day (2026-02-30)
            day = None
        if day is None:
            raise forms.ValidationError("A date as YYYY-MM-DD.")
        return day


class MomentField(forms.Field):
    def to_python(self, value: str | None) -> dt.datetime | None:
        if value is None:  # (given, even empty, it must be a date-time)
            return None
        try:
            moment = parse_datetime(value)
        except ValueError:  # well formed, but no such moment (2026-02-30T25:00:00Z)
            moment = None
        if moment is not None and moment.tzinfo is not None:
            try:
                # In UTC: ISO 8601 offsets go to ±23:59, PostgreSQL's to ±15:59 (a DataError, a 500).
                return moment.astimezone(UTC)
            except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first moment there is
                pass
        raise forms.ValidationError("An ISO 8601 date-time with a time zone, e.g. 2026-11-23T08:00:00Z.")


class OneOfField(forms.Field):
    """One of ``allowed``, exactly as written."""

    def __init__(self, *, allowed: Iterable[str], message: str, **kwargs: Any) -> None:
        self.allowed, self.message = tuple(allowed), message
        super().__init__(**kwargs)

    def to_python(self, value: str | None) -> str | None:
        if value is not None and value not in self.allowed:
            raise forms.ValidationError(self.message)
        return value


class StatusesField(forms.Field):
    """One order status or several, comma-separated (spaces around each are ignored)."""

    def to_python(self, value: str | None) -> list[str] | None:
        if value is None:
            return None
        statuses = [status.strip() for status in value.split(",")]
        unknown = [status for status in statuses if status not in ImagingOrder.Status.values]
        if unknown:
            known = ", ".join(ImagingOrder.Status.values)
            raise forms.ValidationError(f"Unknown status {', '.join(unknown)}; one of {known}.")
        return statuses


class UpperCaseField(forms.CharField):
    def to_python(self, value: str | None) -> str:
        return cast(str, super().to_python(value)).upper()  # (empty_value is "": never None)


# --- filters ------------------------------------------------------------------------------------


class RecordIdFilter(django_filters.Filter):
    field_class = RecordIdField


class DayFilter(django_filters.Filter):
    field_class = DayField


class MomentFilter(django_filters.Filter):
    field_class = MomentField


class OneOfFilter(django_filters.Filter):
    field_class = OneOfField


class StatusesFilter(django_filters.Filter):
    field_class = StatusesField


class UpperCaseFilter(django_filters.CharFilter):
    field_class = UpperCaseField


def record_id(field_name: str, description: str | None = None) -> RecordIdFilter:
    return schema(RecordIdFilter(field_name), RECORD_ID, description)


def text(
    field_name: str | None,
    description: str | None = None,
    kind: type[django_filters.CharFilter] = django_filters.CharFilter,
    **kwargs: Any,
) -> django_filters.CharFilter:
    """Text matched as given (not stripped); empty filters nothing."""
    return kind(field_name, strip=False, help_text=description, **kwargs)


def one_of(
    field_name: str, allowed: Iterable[str], message: str, description: str | None = None, **kwargs: Any
) -> OneOfFilter:
    """One of ``allowed`` (else a 400 with ``message``)."""
    found = OneOfFilter(field_name, allowed=allowed, message=message, **kwargs)
    return schema(found, {"type": "string", "enum": list(allowed)}, description)


def day(field_name: str | None, description: str, **kwargs: Any) -> DayFilter:
    return schema(DayFilter(field_name, **kwargs), {"type": "string", "format": "date"}, description)


def updated_since() -> MomentFilter:
    return schema(
        MomentFilter("updated", lookup_expr="gte"),
        {"type": "string", "format": "date-time"},
        "ISO 8601 date-time with a time zone: only records changed since",
    )


class ListFilters(django_filters.FilterSet):
    """What every list with ``?updated_since=`` shares (a PMS pulls what changed since it last looked)."""

    updated_since = updated_since()

    @classmethod
    def narrow(cls, queryset: Records, values: dict[str, Any]) -> Records:
        """``queryset`` narrowed by cleaned ``values`` (by parameter name) through the filters'
        own lookups: how the compiled lists (selectors.py) build their statements."""
        filters = cls(queryset=queryset).filters  # (bound: a method filter finds its method)
        for name, value in values.items():
            queryset = filters[name].filter(queryset, value)
        return queryset


# --- the lists ----------------------------------------------------------------------------------


class OwnerFilter(ListFilters):
    class Meta:
        model = Owner
        fields: list[str] = []


class VisitFilter(ListFilters):
    patient = record_id("patient_id")

    class Meta:
        model = Visit
        fields: list[str] = []


_STATUS = f"\\s*({'|'.join(ImagingOrder.Status.values)})\\s*"
STATUSES = f"^{_STATUS}(,{_STATUS})*$"


class OrderFilter(ListFilters):
    status = schema(
        StatusesFilter("status", lookup_expr="in"),
        {"type": "string", "pattern": STATUSES},
        "One status or several, comma-separated",
    )
    date = day(None, "Scheduled on this day (YYYY-MM-DD, the clinic's time zone)", method="scheduled_on")
    patient = record_id("patient_id")
    accession_number = text("accession_number")

    class Meta:
        model = ImagingOrder
        fields: list[str] = []

    def scheduled_on(self, orders: QuerySet[ImagingOrder], name: str, day: dt.date) -> QuerySet[ImagingOrder]:
        start, end = day_bounds(day)
        return orders.filter(scheduled_start__gte=start, scheduled_start__lt=end)


class ReportFilter(ListFilters):
    study = record_id("study_id")
    order = record_id("study__order_id")
    patient = record_id("study__patient_id")
    status = one_of(
        "status", Report.Status.values, f"One of {', '.join(Report.Status.values)}.",
        "draft, final or amended; `final` also finds amended reports", method="with_status",
    )  # fmt: skip

    class Meta:
        model = Report
        fields: list[str] = []

    def with_status(self, reports: QuerySet[Report], name: str, wanted: str) -> QuerySet[Report]:
        # A signed report that was amended is still signed: ``final`` finds both.
        statuses = [Report.Status.FINAL, Report.Status.AMENDED] if wanted == Report.Status.FINAL else [wanted]
        return reports.filter(status__in=statuses)


class BreedFilter(django_filters.FilterSet):
    species = text("species__code", "One species' breeds, by its SNOMED CT code")

    class Meta:
        model = Breed
        fields: list[str] = []


class CrosswalkFilter(django_filters.FilterSet):
    system = text("system")
    kind = text("kind")

    class Meta:
        model = CodeMapping
        fields: list[str] = []


# --- the lists compiled once (selectors.py) -------------------------------------------------------


class SearchWordsField(forms.CharField):
    """The search's words (patients/search.py), each once; empty text is no search."""

    # (Not a CharField's str: the words are the value.)
    def to_python(self, value: str | None) -> tuple[str, ...] | None:  # type: ignore[override]
        value = super().to_python(value)
        return tuple(dict.fromkeys(query_words(value))) if value else None


class SearchWordsFilter(django_filters.CharFilter):
    field_class = SearchWordsField


class PatientFilter(ListFilters):
    search = text(
        None, "Name, owner, phone, microchip, patient ID or external id (every word must match)",
        SearchWordsFilter, method="filter_search",
    )  # fmt: skip

    class Meta:
        model = Patient
        fields: list[str] = []

    def filter_search(
        self, patients: QuerySet[Patient], name: str, words: tuple[str, ...]
    ) -> QuerySet[Patient]:
        matches = patient_ids_matching(words=words)
        if matches is None:  # (no words: never asked, PatientList answers a search of none itself)
            return patients.none()
        return patients.filter(pk__in=matches)


class StudyFilter(ListFilters):
    patient = record_id("patient_id")
    accession_number = text("accession_number")
    order = record_id("order_id")
    date = day("study_date", "Study date, YYYY-MM-DD")
    modality = text(None, kind=UpperCaseFilter, method="with_modality")

    class Meta:
        model = Study
        fields: list[str] = []

    def with_modality(self, studies: QuerySet[Study], name: str, modality: str) -> QuerySet[Study]:
        return studies.filter(pk__in=Series.objects.filter(modality=modality).values("study"))


def filter_values(filterset_class: type[ListFilters], request: Request) -> dict[str, Any]:
    """The list's parameters the request gives, cleaned, by name (a 400 naming each bad one).

    Each is cleaned by its filter's own form field, as the FilterSet's form would clean it, but
    without building a FilterSet, a form class and a form for every request: that cost ~1 ms, as
    much as the rest of a list page."""
    data = request.query_params
    values: dict[str, Any] = {}  # (each filter's own cleaned type)
    errors: dict[str, list[str]] = {}
    # (A class is hashable; FilterSet is Any to mypy, so its subclasses' metaclass is unknown.)
    for name, field in _form_fields(filterset_class):  # type: ignore[arg-type]
        try:
            value = field.clean(field.widget.value_from_datadict(data, None, name))
        except forms.ValidationError as error:
            errors[name] = error.messages
        else:
            # (A search given with no words is kept, as ``()``: it matches nothing.)
            if value not in (None, ""):
                values[name] = value
    if errors:
        raise ValidationError(errors)
    return values


@cache
def _form_fields(filterset_class: type[ListFilters]) -> list[tuple[str, forms.Field]]:
    return [(name, filter_.field) for name, filter_ in filterset_class.base_filters.items()]
