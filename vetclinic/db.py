"""Queries that run thousands of times with one shape: compiled once, run with new values.

Django compiles a queryset to SQL each time it is evaluated: for a lookup through a join that
is ~0.5 ms of Python, more than PostgreSQL takes to answer it. The listeners' hot lookups (an
HL7 ADT message finds its animal and owner by the PMS's ids) run with the same shape every
time, so ``CompiledQuery`` keeps the SQL Django wrote for it and the converters Django would
apply, and builds the model instances as a queryset would.
"""
import functools
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date

from django.db import connections, router, transaction


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
        self._compiled = {}  # database alias -> (sql, attnames, compiler, converters)

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
        model = self.build(*self.markers).model if not self._compiled else self._model
        alias = router.db_for_read(model)
        compiled = self._compiled.get(alias)
        if compiled is None:
            compiled = self._compiled[alias] = self._compile(alias)
            self._model = model
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


# --- savepoints ---------------------------------------------------------------------------------

_all_or_nothing = ContextVar("all_or_nothing", default=False)


@contextmanager
def all_or_nothing():
    """Inside, services decorated with ``service_atomic`` open no savepoint of their own.

    For a caller that undoes its whole transaction on any error (the HL7 listener: a message
    is applied whole or refused whole), a savepoint per service call buys nothing and costs
    two round trips to the database. An error in such a service then marks the transaction
    for rollback, so the caller must not catch it and carry on inside the transaction."""
    token = _all_or_nothing.set(True)
    try:
        yield
    finally:
        _all_or_nothing.reset(token)


def service_atomic(func):
    """``transaction.atomic`` for a service: a savepoint when nested, unless inside
    ``all_or_nothing()``."""

    @functools.wraps(func)
    def atomic(*args, **kwargs):
        with transaction.atomic(savepoint=not _all_or_nothing.get()):
            return func(*args, **kwargs)

    return atomic
