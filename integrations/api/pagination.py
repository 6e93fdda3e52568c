"""Cursor pagination: stable under inserts, so a PMS can pull everything and then only what
changed (``?updated_since=``) without missing or repeating a record. And what keeps a page's
cost flat: its rows' related records, prefetched into plain lists."""
from rest_framework.pagination import CursorPagination


class Cursor(CursorPagination):
    ordering = "id"
    page_size_query_param = "page_size"
    max_page_size = 500


def prefetched(instance, rows, relation):
    """The related records a list query prefetched into the list ``rows`` (Prefetch's to_attr),
    else the relation's. A list, not a queryset per record: with a plain prefetch Django builds a
    filtered queryset for every record and relation, most of a 100-row page's time."""
    found = getattr(instance, rows, None)
    return found if found is not None else list(getattr(instance, relation).all())

