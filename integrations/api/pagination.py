"""Cursor pagination: stable under inserts, so a PMS can pull everything and then only what
changed (``?updated_since=``) without missing or repeating a record. And what keeps a page's
cost flat: its rows' related records, prefetched into plain lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from django.db.models import Model, QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

from vetclinic.db import CompiledQuery

# Names for the hints only: DRF's settings import this module while rest_framework.views loads.
if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class Cursor(CursorPagination):
    ordering = "id"
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int | None:
        """``?page_size=``: a whole number from 1 (over 500 gives 500); anything else is a 400,
        not (as DRF has it) silently the default page."""
        value = request.query_params.get(self.page_size_query_param)
        if value is None:
            return self.page_size
        digits = value.lstrip("0")
        if not value.isascii() or not value.isdigit() or not digits:
            message = f"A whole number from 1 (at most {self.max_page_size} are given)."
            raise ValidationError({self.page_size_query_param: [message]})
        return self.max_page_size if len(digits) > 6 else min(int(digits), self.max_page_size)

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                most = self.max_page_size
                parameter["description"] = f"Records per page, at most {most} (more gives {most})"
        return parameters


def prefetched(instance: Model, rows: str, relation: str) -> list[Any]:
    """The related records a list query prefetched into the list ``rows`` (Prefetch's to_attr),
    else the relation's. A list, not a queryset per record: with a plain prefetch Django builds a
    filtered queryset for every record and relation, most of a 100-row page's time."""
    found = getattr(instance, rows, None)
    return found if found is not None else list(getattr(instance, relation).all())


# --- list pages compiled once (vetclinic/db.py) ---------------------------------------------------


# A cursor's position: its lookup and the id it is past (``("id__gt", 42)``).
Position = tuple[str, int]


class Page:
    """Where a page starts and ends: a list's ``build(filters, page)`` may read its rows' ids
    first with it (``page.of(ids, offset=False)``), then the rows of those ids."""

    def __init__(
        self, ordering: Sequence[str], position: Position | None, start: int | None, stop: int | None
    ) -> None:
        self.ordering, self.position, self.start, self.stop = ordering, position, start, stop

    def of(self, queryset: QuerySet[Any, Any], *, offset: bool = True) -> QuerySet[Any, Any]:
        """The page of ``queryset``: ordered, after the cursor's position, sliced (with
        ``offset=False`` from its first row: what the page and the rows before it take)."""
        found = queryset.order_by(*self.ordering)
        if self.position is not None:
            found = found.filter(**{self.position[0]: self.position[1]})
        return found[self.start if offset else 0 : self.stop]


# A list's page query: (its cleaned filters by name, the page) -> its ``values()`` queryset.
PageBuild = Callable[[dict[str, Any], Page], QuerySet[Any, dict[str, Any]]]


def list_pages(build: PageBuild, *, prepare: bool = True) -> CompiledQuery:
    """The pages of a list as a CompiledQuery: ``build(filters, page)`` returns the list's
    ``values()`` queryset (``filters``: the list's own, by name). A shape is the filters' kinds,
    the ordering, the cursor's direction and the page's bounds; the values are the filters' and
    the cursor's position. ``prepare``: see vetclinic/db.py (one plan for every value)."""

    def page_build(
        values: dict[str, Any],
        ordering: Sequence[str],
        lookup: str | None,
        start: int | None,
        stop: int | None,
    ) -> QuerySet[Any, Any]:
        filters = {name: value for name, value in values.items() if name != "position"}
        page = Page(ordering, (lookup, values["position"]) if lookup else None, start, stop)
        return page.of(build(filters, page))

    return CompiledQuery(page_build, prepare=prepare)


class PageQuery:
    """What CursorPagination pages through, in place of a queryset: it orders (``order_by``),
    filters by its position (``filter(id__gt=...)``) and slices, and the slice runs the
    list's compiled statement (``list_pages``)."""

    def __init__(
        self,
        pages: CompiledQuery,
        model: type[Model],
        filters: dict[str, Any],
        ordering: Sequence[str] = (),
        position: Position | None = None,
    ) -> None:
        self.pages, self.model, self.filters = pages, model, filters
        self.ordering, self.position = tuple(ordering), position

    def order_by(self, *ordering: str) -> PageQuery:
        return PageQuery(self.pages, self.model, self.filters, ordering, self.position)

    def filter(self, **position: str | int) -> PageQuery:
        ((lookup, value),) = position.items()  # the cursor's one condition, e.g. id__gt
        field = lookup.rsplit("__", 1)[0]
        if not str(value).isdigit() or len(str(value)) > 18 or field != "id":
            raise NotFound("Invalid cursor")  # (DRF's own answer to a cursor it cannot read)
        return PageQuery(self.pages, self.model, self.filters, self.ordering, (lookup, int(value)))

    def __getitem__(self, page: slice) -> list[dict[str, Any]]:
        lookup, value = self.position or (None, None)
        shape = (self.ordering, lookup, page.start, page.stop)
        return self.pages.run({**self.filters, "position": value}, shape=shape)
