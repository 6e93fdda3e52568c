"""Database helpers for the hot paths: the listeners' and the REST lists'.

- Queries that run thousands of times with one shape, compiled once and run with new values
  (``CompiledQuery``, ``RowsById``). Django compiles a queryset to SQL each time it is
  evaluated: for a lookup through a join that is ~0.5 ms of Python, more than PostgreSQL takes
  to answer it. An HL7 ADT message finds its animal and owner by the PMS's ids with the same
  shape every time; ``CompiledQuery`` keeps the SQL Django wrote and the converters Django
  would apply, and builds the model instances as a queryset would.
- A cursor that binds on the server, so that psycopg prepares what it repeats
  (``server_binding_cursor``), and lookups whose statement text is the same for every value
  (``IdIn``, ``StartsWith``).
"""
import json
import weakref
from datetime import date

from django.db import DEFAULT_DB_ALIAS, connections, router
from django.db.models import F, Lookup


class CompiledQuery:
    """``build(*values)`` returns the queryset; it is compiled once per database with marker
    values in place of the real ones, which then stand in the markers' places.

    Only plain querysets of one model (no select_related, annotations, only() or values()),
    and values Django passes to the database as they are (strings, integers, decimals) or,
    for dates, as the backend adapts them: compiling finds each marker among the SQL's
    parameters, and refuses a query whose parameters are anything else.
    """

    def __init__(self, build, *markers):
        self.build = build
        self.markers = markers
        self._compiled = {}  # database alias -> (sql, slots, attnames, compiler, converters)
        self._model = None

    def _compile(self, alias):
        queryset = self.build(*self.markers)
        query = queryset.query
        if query.select_related or query.annotation_select or query.values_select or query.deferred_loading[0]:
            raise ValueError("CompiledQuery takes a plain queryset of one model")
        compiler = query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        slots = [self._slot(compiler.connection.ops, param) for param in params]
        columns = [column for column, _, _ in compiler.select[: compiler.col_count]]
        converters = compiler.get_converters(columns)
        attnames = [column.target.attname for column in columns]
        return sql, slots, attnames, compiler, converters

    def _slot(self, ops, param):
        """(index of the marker this parameter is, how a value is adapted for it)."""
        for index, marker in enumerate(self.markers):
            if type(param) is type(marker) and param == marker:
                return index, None
            if type(marker) is date and param == ops.adapt_datefield_value(marker):  # SQLite: a string
                return index, ops.adapt_datefield_value
        raise ValueError(f"the query's parameter {param!r} is none of its markers {self.markers!r}")

    def instances(self, *values):
        """The model instances the queryset ``build(*values)`` would give, in its order."""
        if self._model is None:
            self._model = self.build(*self.markers).model
        model = self._model
        alias = router.db_for_read(model)
        compiled = self._compiled.get(alias)
        if compiled is None:
            compiled = self._compiled[alias] = self._compile(alias)
        sql, slots, attnames, compiler, converters = compiled
        params = [values[index] if adapt is None else adapt(values[index]) for index, adapt in slots]
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if converters:
            rows = compiler.apply_converters(rows, converters)
        return [model.from_db(alias, attnames, row) for row in rows]

    def first(self, *values):
        found = self.instances(*values)
        return found[0] if found else None


# --- rows by id -----------------------------------------------------------------------------------


class IdIn(Lookup):
    """``id`` is one of a list given as ONE parameter, so that the statement's text is the same
    for any number of ids: ``= ANY(array)`` on PostgreSQL; on SQLite, which has no arrays, a
    JSON list unpacked by json_each()."""

    lookup_name = "in_one_parameter"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*lhs_params, list(self.rhs)]
        return f"{lhs} IN (SELECT value FROM json_each(%s))", [*lhs_params, json.dumps(list(self.rhs))]


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

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} >= %s AND {lhs} < (%s || char(1114111))", [*lhs_params, self.rhs, *lhs_params, self.rhs]

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        sql = f"({lhs})::text ~>=~ %s AND ({lhs})::text ~<~ (%s::text || chr(1114111))"
        return sql, [*lhs_params, self.rhs, *lhs_params, self.rhs]


class RowsById:
    """The rows of ``build(condition)`` (a ``values()`` queryset filtered by ``condition``, which
    picks rows by their primary key ``id``; ``key``: the column of the rows that holds it) for
    the given ids, in the order of the ids, as dicts: compiled once
    per database with the ids as its only parameter, Django's converters applied, so the rows
    are what ``values()`` gives.

    A read in two steps (the ids matching some query, then their rows by this) keeps the
    second, the heavy one with its joins, one text for every request: where it is prepared (the
    DICOM listener's connections bind on the server) PostgreSQL plans it once per connection
    instead of on every request."""

    def __init__(self, build, *, key="id"):
        self.build, self.key = build, key
        self._compiled = {}  # database vendor -> (sql, json, names, compiler, converters)

    def _compile(self, connection):
        marker = [-7001]
        query = self.build(IdIn(F("id"), marker)).query
        compiler = query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        if list(params) not in ([marker], [json.dumps(marker)]):
            raise ValueError(f"the rows query has other parameters than the ids: {params!r}")
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        converters = compiler.get_converters([s[0] for s in compiler.select[: compiler.col_count]])
        return sql, connection.vendor != "postgresql", names, compiler, converters

    @property
    def sql(self):
        return self._get(connections[DEFAULT_DB_ALIAS])[0]

    def _get(self, connection):
        compiled = self._compiled.get(connection.vendor)
        if compiled is None:
            compiled = self._compiled[connection.vendor] = self._compile(connection)
        return compiled

    def rows(self, ids):
        if not ids:
            return []
        connection = connections[DEFAULT_DB_ALIAS]
        sql, as_json, names, compiler, converters = self._get(connection)
        with connection.cursor() as cursor:
            cursor.execute(sql, [json.dumps(list(ids)) if as_json else list(ids)])
            found = cursor.fetchall()
        if converters:
            found = compiler.apply_converters(found, converters)
        by_id = {}
        for values in found:
            row = dict(zip(names, values))
            by_id[row[self.key]] = row
        return [by_id[i] for i in ids if i in by_id]  # a row deleted meanwhile is left out


def server_binding_cursor(connection, *, generic_plans=False):
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
        from django.db.backends.postgresql.base import ServerBindingCursor, is_psycopg3
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
            cursor = ServerBindingCursor(raw)
            return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)
    return connection.cursor()


_generic_plans = weakref.WeakSet()  # database connections (psycopg's) set to generic plans
