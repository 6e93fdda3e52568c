"""Cursor pagination: stable under inserts, so a PMS can pull everything and then only what
changed (``?updated_since=``) without missing or repeating a record. And what keeps a page's
cost flat: its rows' related records, prefetched into plain lists."""
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination


class Cursor(CursorPagination):
    ordering = "id"
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
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

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                most = self.max_page_size
                parameter["description"] = f"Records per page, at most {most} (more gives {most})"
        return parameters


def prefetched(instance, rows, relation):
    """The related records a list query prefetched into the list ``rows`` (Prefetch's to_attr),
    else the relation's. A list, not a queryset per record: with a plain prefetch Django builds a
    filtered queryset for every record and relation, most of a 100-row page's time."""
    found = getattr(instance, rows, None)
    return found if found is not None else list(getattr(instance, relation).all())

