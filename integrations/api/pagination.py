"""Cursor pagination: stable under inserts, so a PMS can pull everything and then only what
changed (``?updated_since=``) without missing or repeating a record."""
from rest_framework.pagination import CursorPagination


class Cursor(CursorPagination):
    ordering = "id"
    page_size_query_param = "page_size"
    max_page_size = 500
