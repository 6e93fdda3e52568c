"""A list page's statement, compiled once per shape and prepared on PostgreSQL.

Building a page's queryset and compiling it to SQL cost Django more than PostgreSQL took to
run it (~1.2 ms of a ~3 ms search), and PostgreSQL planned it anew every time (~0.6 ms).
Requests of one shape (the same filters, as many search words, the same cursor direction,
offset and page size) send the same SQL with other values. So each shape's SQL is compiled
once per process from the very queryset the list would otherwise build, and run with the
request's values; on PostgreSQL through a server-side binding cursor, so that psycopg prepares
it on a connection that has sent it a few times (``prepare_threshold``, vetclinic/settings.py)
and PostgreSQL plans it once per connection, not once per request.

What is compiled is the SQL text alone, never a result: every request runs its statement.
"""
from datetime import date, datetime, timedelta, timezone

from django.core.exceptions import EmptyResultSet
from django.db import connection

from vetclinic.db import server_binding_cursor

KEPT_SHAPES = 200  # more than the lists' shapes in use; a client trying odd page sizes and offsets clears them


class CompiledRows:
    """The rows of ``build(filters, page)``, a ``values()`` queryset, ordered, filtered by a
    cursor position and sliced as CursorPagination asks (see ``PageQuery`` and ``Page``).

    A shape is compiled twice with two sets of stand-in values; a parameter that differs
    between the two is the stand-in of a filter (and takes the request's value), one that does
    not is the query's own constant. A shape whose SQL or parameters cannot be told apart that
    way (the database adapts a value first, as SQLite does dates) is run as a plain queryset.
    ``prepare``: whether the statements are prepared on PostgreSQL, where they are then planned
    once for every value (a generic plan: PostgreSQL's own choice went on planning a search
    for its words every time, ~0.45 ms, more than running it), so only where one plan suits
    every value they will get."""

    def __init__(self, build, *, prepare=True):
        self.build, self.prepare = build, prepare
        self._shapes = {}

    def queryset(self, filters, ordering, position, start, stop):
        page = Page(ordering, position, start, stop)
        return page.of(self.build(filters, page))

    def rows(self, filters, ordering, position, start, stop):
        shape = (
            connection.vendor,
            tuple((name, len(value) if isinstance(value, tuple) else None) for name, value in sorted(filters.items())),
            tuple(ordering), position[0] if position is not None else None, start, stop,
        )  # fmt: skip
        compiled = self._shapes.get(shape)
        if compiled is None:
            if len(self._shapes) >= KEPT_SHAPES:
                self._shapes.clear()
            compiled = self._shapes[shape] = self._compile(filters, ordering, position, start, stop)
        if compiled is False:
            return list(self.queryset(filters, ordering, position, start, stop))
        values = {**filters, "position": position[1] if position is not None else None}
        return compiled.run(values, prepare=self.prepare)

    def _compile(self, filters, ordering, position, start, stop):
        """A _Statement for the shape, or False when it cannot be compiled once."""
        versions = []
        for version in (1, 2):
            stand_ins = {name: _stand_in(value, version, n) for n, (name, value) in enumerate(filters.items())}
            placed = None
            if position is not None:
                placed = (position[0], _stand_in(position[1], version, len(filters)))
            query = self.queryset(stand_ins, ordering, placed, start, stop).query
            if placed is not None:
                stand_ins["position"] = placed[1]
            compiler = query.get_compiler(connection=connection)
            try:
                sql, params = compiler.as_sql()
            except EmptyResultSet:  # a filter that matches nothing, whatever its value (Django sends no SQL)
                return False
            versions.append((sql, list(params), stand_ins, compiler, query))
        (sql, params, stand_ins, compiler, query), (sql_2, params_2, stand_ins_2, _, _) = versions
        if sql != sql_2 or len(params) != len(params_2):
            return False
        slots = []
        for value, value_2 in zip(params, params_2):
            if type(value) is type(value_2) and value == value_2:
                slots.append((None, None, value))  # the query's own constant
                continue
            slot = _slot_of(value, value_2, stand_ins, stand_ins_2)
            if slot is None:
                return False
            slots.append((*slot, None))
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        converters = compiler.get_converters([s[0] for s in compiler.select[: compiler.col_count]])
        return _Statement(sql, slots, names, compiler, converters)


class Page:
    """Where a page starts and ends: ``build(filters, page)`` may read its rows' ids first with
    it (``page.of(ids, offset=False)``), then the rows of those ids."""

    def __init__(self, ordering, position, start, stop):
        self.ordering, self.position, self.start, self.stop = ordering, position, start, stop

    def of(self, queryset, *, offset=True):
        """The page of ``queryset``: ordered, after the cursor's position, sliced (with
        ``offset=False`` from its first row: what the page and the rows before it take)."""
        found = queryset.order_by(*self.ordering)
        if self.position is not None:
            found = found.filter(**{self.position[0]: self.position[1]})
        return found[self.start if offset else 0 : self.stop]


class _Statement:
    def __init__(self, sql, slots, names, compiler, converters):
        self.sql, self.slots, self.names = sql, slots, names
        self.compiler, self.converters = compiler, converters

    def run(self, values, *, prepare):
        params = [
            constant if name is None else values[name] if index is None else values[name][index]
            for name, index, constant in self.slots
        ]  # fmt: skip
        with _cursor(prepare) as cursor:
            cursor.execute(self.sql, params)
            found = cursor.fetchall()
        if self.converters:
            found = self.compiler.apply_converters(found, self.converters)
        return [dict(zip(self.names, values)) for values in found]


def _cursor(prepare):
    """A cursor that binds on the server where the statement may be prepared, with one plan
    for every value (vetclinic.db.server_binding_cursor); elsewhere the connection's own."""
    return server_binding_cursor(connection, generic_plans=True) if prepare else connection.cursor()


def _stand_in(value, version, n):
    """A value of ``value``'s kind that no request sends, different for each version and filter."""
    if isinstance(value, tuple):
        return tuple(_stand_in(item, version, 100 * (n + 1) + i) for i, item in enumerate(value))
    if isinstance(value, bool):
        raise TypeError("a boolean filter has no stand-in apart from its two values; filter on it in build()")
    if isinstance(value, int):
        return -(10**15) - 1000 * version - n
    if isinstance(value, str):
        return f"stand-in-{version}-{n}"
    if isinstance(value, datetime):
        return datetime(1901, 1, version, tzinfo=timezone.utc) + timedelta(seconds=n)
    if isinstance(value, date):
        return date(1901, 1, version) + timedelta(days=n)
    raise TypeError(f"no stand-in for a {type(value).__name__}")


def _slot_of(value, value_2, stand_ins, stand_ins_2):
    """(filter name, index in its tuple or None) of the stand-in these two parameters are."""
    for name, stand_in in stand_ins.items():
        if isinstance(stand_in, tuple):
            for index, item in enumerate(stand_in):
                if _same(value, item) and _same(value_2, stand_ins_2[name][index]):
                    return name, index
        elif _same(value, stand_in) and _same(value_2, stand_ins_2[name]):
            return name, None
    return None


def _same(param, stand_in):
    return type(param) is type(stand_in) and param == stand_in


class PageQuery:
    """What CursorPagination pages through, in place of a queryset: it orders (``order_by``),
    filters by its position (``filter(id__gt=...)``) and slices, and the slice runs the
    shape's compiled statement. ``filters``: the list's own filters, by name, as ``build``
    takes them."""

    def __init__(self, compiled, model, filters, ordering=(), position=None):
        self.compiled, self.model, self.filters = compiled, model, filters
        self.ordering, self.position = tuple(ordering), position

    def order_by(self, *ordering):
        return PageQuery(self.compiled, self.model, self.filters, ordering, self.position)

    def filter(self, **position):
        ((lookup, value),) = position.items()  # the cursor's one condition, e.g. id__gt
        field = lookup.rsplit("__", 1)[0]
        if not str(value).isdigit() or len(str(value)) > 18 or field != "id":
            from rest_framework.exceptions import NotFound

            raise NotFound("Invalid cursor")  # (DRF's own answer to a cursor it cannot read)
        return PageQuery(self.compiled, self.model, self.filters, self.ordering, (lookup, int(value)))

    def __getitem__(self, page):
        return self.compiled.rows(self.filters, self.ordering, self.position, page.start, page.stop)
