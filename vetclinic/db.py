"""Queries compiled once and run with new values: the one place the hot paths (the HL7
lookups, the worklist's rows by id, the REST list pages) step past Django's compiler.

Django compiles a queryset to SQL each time it is evaluated: for a lookup through a join that
is ~0.5 ms of Python, more than PostgreSQL takes to answer it, and a REST list page cost more
to build and compile (~1.2 ms) than to run. Requests of one shape send the same SQL with other
values, so ``CompiledQuery`` compiles each shape's SQL once per process from the very queryset
that would otherwise be built, and runs it with the call's values; what is kept is the SQL
text, never a result.

The API, all of it:

- ``CompiledQuery(build, *, prepare=False)``; ``.run(*values, shape=())`` gives what
  ``list(build(*values, *shape))`` gives (model instances, or dicts for a ``values()``
  queryset); ``.first(*values)``. ``values``: strings, integers, decimals, dates, date-times,
  and tuples or dicts of them (each item one parameter), lists of ids (one parameter: see
  ``IdIn``), None and booleans (part of the shape: not parameters). ``shape``: what changes
  the statement's text (an ordering, a page's bounds); hashable.
- ``RowsById(build, key=...)``: rows of a ``values()`` query by id, in the ids' order.
- ``IdIn``: ``id`` among a list or a subquery, with one statement text for any number of ids;
  ``AnyOf`` the same for other values (UIDs).
- ``StartsWith``: a prefix as an index range, with one statement text for every prefix.

``prepare=True`` runs the statement through a cursor that binds on the server, so that psycopg
prepares it (``prepare_threshold``, vetclinic/settings.py) and PostgreSQL plans it once per
connection with a generic plan: only for statements whose one plan suits every value.

``DATABASE_COMPILE_ONCE=false`` (settings) turns all of it off: every call builds and runs its
queryset as plain Django would, with the same results. ``check`` runs both on every call and
raises ``CompiledQueryDiffers`` when the compiled statement's rows are not the plain queryset's:
the test suite runs this way (tests/conftest.py), so every test that reaches a compiled query
checks it against what Django alone gives, with that test's own values.
"""

import json
import weakref
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models import F, Lookup
from django.db.models.query import ModelIterable, QuerySet
from django.db.models.sql.compiler import SQLCompiler

# A call's values, as the docstring lists them (strings, numbers, dates, ids, nested in tuples
# and dicts). Any: they go through Django's compiler and the database adapter as they are.
Values = tuple[Any, ...]
# Where one parameter sits among the call's values: indexes and keys, outermost first.
Path = tuple[int | str, ...]
# A compiled statement's parameter: (path of the value, how it is adapted, None) or
# (None, None, the query's own constant).
Slot = tuple[Path | None, Callable[[Any], Any] | None, Any]
# A queryset the build function makes; its rows are any model's, or dicts.
Build = Callable[..., QuerySet[Any, Any]]

KEPT_SHAPES = 200  # per query; more than its shapes in use (a client trying odd page sizes clears them)


def compile_once() -> bool:
    return _setting() in (True, "check")


def _setting() -> bool | str:
    return getattr(settings, "DATABASE_COMPILE_ONCE", True)


class CompiledQueryDiffers(AssertionError):
    """``DATABASE_COMPILE_ONCE=check``: a compiled statement gave other rows than its queryset."""


class CompiledQuery:
    """``build(*values, *shape)`` returns a queryset; see the module's docstring.

    A shape is compiled twice, with two sets of stand-in values; a parameter that differs
    between the two is the stand-in of a value (and takes the call's value), one that does not
    is the query's own constant. A shape whose SQL or parameters cannot be told apart that way
    (a value Django changes on the way in, as ``icontains`` does, or that the database adapts
    first, as SQLite does dates), or whose rows are more than one model's (select_related,
    only()), is run as a plain queryset, every time."""

    def __init__(self, build: Build, *, prepare: bool = False) -> None:
        self.build, self.prepare = build, prepare
        self._shapes: dict[Hashable, _Statement | Literal[False]] = {}

    def queryset(self, *values: Any, shape: Sequence[Any] = ()) -> QuerySet[Any, Any]:
        return self.build(*values, *shape)

    def run(self, *values: Any, shape: tuple[Hashable, ...] = ()) -> list[Any]:
        if not compile_once():
            return list(self.queryset(*values, shape=shape))
        connection = connections[DEFAULT_DB_ALIAS]
        key = (connection.vendor, _signature(values), shape)
        compiled = self._shapes.get(key)
        if compiled is None:
            if len(self._shapes) >= KEPT_SHAPES:
                self._shapes.clear()
            compiled = self._shapes[key] = self._compile(connection, values, shape)
        if compiled is False:
            return list(self.queryset(*values, shape=shape))
        found = compiled.run(connection, values, prepare=self.prepare)
        if _setting() == "check":
            self._check(found, values, shape)
        return found

    def _check(self, found: list[Any], values: Values, shape: tuple[Hashable, ...]) -> None:
        """The compiled rows against the plain queryset's, field by field (a model instance's
        ``==`` compares only its primary key); in any order where the queryset sets none."""
        queryset = self.queryset(*values, shape=shape)
        # Not in the statements a test counts (CaptureQueriesContext): the count is of what
        # runs outside the check.
        connection = connections[queryset.db]
        counted, connection.force_debug_cursor = connection.force_debug_cursor, False
        try:
            expected = [_fields(row) for row in queryset]
        finally:
            connection.force_debug_cursor = counted
        got = [_fields(row) for row in found]
        if not queryset.ordered:
            expected, got = sorted(expected, key=repr), sorted(got, key=repr)
        if got != expected:
            raise CompiledQueryDiffers(
                f"compiled {_compiled_sql(self, values, shape)!r} with {values!r} gave {got!r}; "
                f"the queryset gave {expected!r}"
            )

    def first(self, *values: Any, shape: tuple[Hashable, ...] = ()) -> Any:
        found = self.run(*values, shape=shape)
        return found[0] if found else None

    def _compile(
        self, connection: BaseDatabaseWrapper, values: Values, shape: tuple[Hashable, ...]
    ) -> "_Statement | Literal[False]":
        """A _Statement for the shape, or False when it cannot be compiled once."""
        versions = []
        for version in (1, 2):
            leaves: list[tuple[Path, Any]] = []
            stand_ins = _stand_in(values, version, (), leaves)
            queryset = self.queryset(*stand_ins, shape=shape)
            compiler = queryset.query.get_compiler(connection=connection)
            try:
                sql, params = compiler.as_sql()
            except EmptyResultSet:  # a filter that matches nothing, whatever its value (Django sends no SQL)
                return False
            versions.append((sql, list(params), leaves, compiler, queryset))
        (sql, params, leaves, compiler, queryset), (sql_2, params_2, leaves_2, _, _) = versions
        if sql != sql_2 or len(params) != len(params_2):
            return False
        slots: list[Slot] = []
        for value, value_2 in zip(params, params_2, strict=True):
            if _same(value, value_2):
                slots.append((None, None, value))  # the query's own constant
                continue
            slot = _slot_of(value, value_2, leaves, leaves_2)
            if slot is None:
                return False
            slots.append((slot[0], slot[1], None))
        query = queryset.query
        columns = [column for column, _, _ in compiler.select[: compiler.col_count]]
        names: list[str]
        if query.values_select or query.annotation_select or query.extra_select:
            names, model = [*query.extra_select, *query.values_select, *query.annotation_select], None
        elif (
            queryset._iterable_class is ModelIterable
            and not query.select_related
            and not query.deferred_loading[0]
        ):
            names, model = [column.target.attname for column in columns], queryset.model
        else:
            return False
        return _Statement(sql, slots, names, model, compiler, compiler.get_converters(columns))


class _Statement:
    def __init__(
        self,
        sql: str,
        slots: list[Slot],
        names: list[str],
        model: Any,
        compiler: SQLCompiler,
        converters: dict[int, Any],
    ) -> None:
        self.sql, self.slots, self.names, self.model = sql, slots, names, model
        self.compiler, self.converters = compiler, converters

    def run(self, connection: BaseDatabaseWrapper, values: Values, *, prepare: bool) -> list[Any]:
        params = [
            constant if path is None else _at(values, path) if adapt is None else adapt(_at(values, path))
            for path, adapt, constant in self.slots
        ]  # fmt: skip
        cursor = server_binding_cursor(connection, generic_plans=True) if prepare else connection.cursor()
        with cursor:
            cursor.execute(self.sql, params)
            found = cursor.fetchall()
        if self.converters:
            found = self.compiler.apply_converters(found, self.converters)
        if self.model is not None:
            return [self.model.from_db(connection.alias, self.names, row) for row in found]
        return [dict(zip(self.names, row, strict=True)) for row in found]


def _fields(row: Any) -> Any:
    """A row as what it holds: a dict as it is, a model instance as its type and loaded fields."""
    if isinstance(row, dict):
        return row
    return (type(row), {name: value for name, value in vars(row).items() if not name.startswith("_")})


def _compiled_sql(query: CompiledQuery, values: Values, shape: tuple[Hashable, ...]) -> str:
    statement = query._shapes.get((connections[DEFAULT_DB_ALIAS].vendor, _signature(values), shape))
    return statement.sql if isinstance(statement, _Statement) else "(not compiled)"


def _signature(value: Any) -> tuple[Any, ...]:
    """What of the values makes the statement's text: their kinds, not what they are."""
    if isinstance(value, dict):
        return ("dict", tuple((name, _signature(item)) for name, item in sorted(value.items())))
    if isinstance(value, tuple):
        return ("tuple", tuple(_signature(item) for item in value))
    if value is None or isinstance(value, bool):
        return ("constant", value)
    return (type(value).__name__,)


def _stand_in(value: Any, version: int, path: Path, leaves: list[tuple[Path, Any]]) -> Any:
    """``value`` with each parameter replaced by a value of its kind that no caller sends,
    different for each version and parameter; ``leaves`` gets (path, stand-in) of each."""
    if isinstance(value, dict):
        return {name: _stand_in(item, version, (*path, name), leaves) for name, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_stand_in(item, version, (*path, i), leaves) for i, item in enumerate(value))
    if value is None or isinstance(value, bool):
        return value
    n = len(leaves)
    stand_in: object
    if isinstance(value, list):  # ids, one parameter
        stand_in = [-(10**15) - 1000 * version - n]
    elif isinstance(value, int):
        stand_in = -(10**15) - 1000 * version - n
    elif isinstance(value, Decimal):
        stand_in = Decimal(-(10**6) - 1000 * version - n)
    elif isinstance(value, str):
        stand_in = f"\x01stand-in-{version}-{n}"
    elif isinstance(value, datetime):
        stand_in = datetime(1901, 1, version, tzinfo=UTC) + timedelta(seconds=n)
    elif isinstance(value, date):
        stand_in = date(1901, 1, version) + timedelta(days=n)
    elif isinstance(value, time):
        stand_in = time(version, n // 60 % 60, n % 60, 1)
    else:
        raise TypeError(f"no stand-in for a {type(value).__name__}")
    leaves.append((path, stand_in))
    return stand_in


def _slot_of(
    value: Any, value_2: Any, leaves: list[tuple[Path, Any]], leaves_2: list[tuple[Path, Any]]
) -> tuple[Path, Callable[[Any], Any] | None] | None:
    """(path of the value these two parameters stand in for, how it is adapted, or None)."""
    for (path, stand_in), (_, stand_in_2) in zip(leaves, leaves_2, strict=True):
        if _same(value, stand_in) and _same(value_2, stand_in_2):
            return path, None
        if isinstance(stand_in, list) and value == json.dumps(stand_in) and value_2 == json.dumps(stand_in_2):
            return path, json.dumps  # IdIn on SQLite
    return None


def _same(param: object, stand_in: object) -> bool:
    return type(param) is type(stand_in) and param == stand_in


def _at(values: Any, path: Path) -> Any:
    for step in path:
        values = values[step]
    return values


# --- lookups whose statement text is the same for every value -----------------------------------


class IdIn(Lookup):
    """``id`` is one of a list given as ONE parameter, so that the statement's text is the same
    for any number of ids: ``= ANY(array)`` on PostgreSQL; on SQLite, which has no arrays, a
    JSON list unpacked by json_each(). Or among a subquery's ids: ``= ANY(ARRAY(subquery))`` on
    PostgreSQL, which reads the ids first and then the rows with them (with ``IN (subquery)``
    it guesses how many ids the subquery gives, and for a search's rare words it guessed
    thousands and read every row; see patients' search pages); ``IN`` elsewhere."""

    lookup_name = "id_in"
    prepare_rhs = False

    # The stubs want a tuple of str/int params; Django takes any sequence, and an id list is one.
    def as_sql(self, compiler: Any, connection: BaseDatabaseWrapper) -> tuple[str, list[Any]]:  # type: ignore[override]
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if hasattr(self.rhs, "resolve_expression"):  # a subquery
            rhs, rhs_params = self.process_rhs(compiler, connection)
            if connection.vendor == "postgresql":
                return f"{lhs} = ANY(ARRAY{rhs})", [*lhs_params, *rhs_params]
            return f"{lhs} IN {rhs}", [*lhs_params, *rhs_params]
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*lhs_params, list(self.rhs)]
        return f"{lhs} IN (SELECT value FROM json_each(%s))", [*lhs_params, json.dumps(list(self.rhs))]


class AnyOf(IdIn):
    """The column is one of a list of values (UIDs, modalities) given as ONE parameter, as IdIn
    takes ids: one statement text for any number of values."""

    lookup_name = "any_of"


class StartsWith(Lookup):
    """The column starts with the right-hand side (case-sensitive), as a range its index
    answers: ``column >= value AND column < value || U+10FFFF`` (nothing but U+10FFFF sorts
    after every character, in UTF-8's bytes as in code points). The value is the statement's
    only parameter, as given, so the statement's text is the same for every value and a
    prepared statement is planned once for all of them. Django's ``startswith`` sends
    ``'value%'`` instead, and a LIKE whose pattern is a parameter is an index range only once
    the planner sees the value. (SQLite's LIKE ignores case and never uses an index.)

    PostgreSQL compares with the byte-wise pattern operators ``~>=~`` / ``~<~``, which the
    varchar_pattern_ops index Django adds to an indexed CharField serves; SQLite compares
    code points anyway (BINARY collation)."""

    lookup_name = "starts_with_range"
    prepare_rhs = False

    # The stubs want a tuple of str/int params; Django takes any sequence, and an id list is one.
    def as_sql(self, compiler: Any, connection: BaseDatabaseWrapper) -> tuple[str, list[Any]]:  # type: ignore[override]
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} >= %s AND {lhs} < (%s || char(1114111))", [
            *lhs_params,
            self.rhs,
            *lhs_params,
            self.rhs,
        ]

    def as_postgresql(self, compiler: Any, connection: BaseDatabaseWrapper) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        sql = f"({lhs})::text ~>=~ %s AND ({lhs})::text ~<~ (%s::text || chr(1114111))"
        return sql, [*lhs_params, self.rhs, *lhs_params, self.rhs]


# --- rows by id -----------------------------------------------------------------------------------


class RowsById:
    """The rows of ``build(condition)`` (a ``values()`` queryset filtered by ``condition``, which
    picks rows by their primary key ``id``; ``key``: the column of the rows that holds it) for
    the given ids, in the order of the ids, as dicts: a CompiledQuery with the ids as its only
    parameter (IdIn).

    A read in two steps (the ids matching some query, then their rows by this) keeps the
    second, the heavy one with its joins, one text for every request: where it is prepared (the
    DICOM listener's connections bind on the server) PostgreSQL plans it once per connection
    instead of on every request."""

    def __init__(self, build: Callable[[IdIn], QuerySet[Any, dict[str, Any]]], *, key: str = "id") -> None:
        self.key = key
        self.compiled = CompiledQuery(lambda ids: build(IdIn(F("id"), ids)))

    def rows(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        if not ids:
            return []
        by_id = {row[self.key]: row for row in self.compiled.run(list(ids))}
        return [by_id[i] for i in ids if i in by_id]  # a row deleted meanwhile is left out


def server_binding_cursor(connection: BaseDatabaseWrapper, *, generic_plans: bool = False) -> CursorWrapper:
    """On PostgreSQL with psycopg 3, a cursor that binds parameters on the server (so that a
    statement's text is the same for every value and psycopg prepares it once the connection
    has sent it ``prepare_threshold`` times, vetclinic/settings.py), wrapped as
    connection.cursor() wraps its own: counted, logged and passed through execute_wrappers.
    Elsewhere, the connection's own cursor.

    ``generic_plans``: the connection's prepared statements are planned once for every value
    (``plan_cache_mode = force_generic_plan``, for the rest of the connection's life), for
    statements whose one plan suits every value: PostgreSQL's own choice may go on planning
    them for each value, which can cost more than running them."""
    if connection.vendor == "postgresql":
        # django-stubs 6.1 lacks is_psycopg3 and types ServerBindingCursor as psycopg2's cursor.
        from django.db.backends.postgresql.base import (  # type: ignore[attr-defined]
            ServerBindingCursor,
            is_psycopg3,
        )
        from psycopg.pq import TransactionStatus

        if is_psycopg3:
            connection.ensure_connection()
            connection.validate_thread_sharing()
            raw = connection.connection
            if generic_plans and raw not in _generic_plans:
                raw.execute("SET plan_cache_mode = force_generic_plan")
                # Inside a transaction the setting goes if it rolls back: set it again next time.
                if raw.info.transaction_status == TransactionStatus.IDLE:
                    _generic_plans.add(raw)
            cursor: Any = ServerBindingCursor(raw)  # type: ignore[call-arg]
            return (
                connection.make_debug_cursor(cursor)
                if connection.queries_logged
                else connection.make_cursor(cursor)
            )
    return connection.cursor()


_generic_plans: weakref.WeakSet[Any] = (
    weakref.WeakSet()
)  # database connections (psycopg's) set to generic plans
