"""What the API accepts before a serializer sees it: request bodies and query strings.

Three kinds of input reached the database or the interpreter's stack unchecked and became a 500:
- text with a NUL character (U+0000): PostgreSQL refuses it in any text value, and the driver's
  error surfaced as a 500 from wherever the value was first used (a filter, a lookup, a save).
  No field of ours means anything by it, so it is refused at the door, naming the field;
- a body nested deeper than the standard library's parser can recurse (``[[[[…`` 100,000 deep);
- a body of any size: DRF reads the stream itself, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE.
"""

from collections.abc import Callable, Mapping
from functools import wraps
from typing import IO, Any

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, parsers, status

# No body of ours nests deeper than a patient's owners (3); a client's own structure in a field
# we ignore gets room, but not the recursion the parser or a serializer would run out of.
MAX_DEPTH = 32
NUL_MESSAGE = "Text may not contain the NUL character (U+0000)."


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is over {limit:,} bytes.")


def body_limit() -> int:
    # (None turns Django's own check off; the API keeps Django's default cap then.)
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, but a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413, one nested over
    MAX_DEPTH or with a NUL in any text (a value or a key) a 400 naming where."""

    def parse(
        self,
        stream: IO[Any] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:  # a JSON body: any JSON value
        limit = body_limit()
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge(limit)
        try:
            # orjson: strict JSON (no NaN), valid UTF-8, and its own nesting limit (1024) rather
            # than the interpreter's recursion limit.
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        problem = input_problem(data)
        if problem is not None:
            where, message = problem
            raise exceptions.ValidationError({where or "non_field_errors": [message]})
        return data


def input_problem(data: Any) -> tuple[str, str] | None:  # (any parsed JSON value)
    """(where, message) for the first value of a parsed body that no field may hold, or None.
    ``where``: the field's path, ``owners.0.role``."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return where, NUL_MESSAGE
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                return where, f"Nested deeper than {MAX_DEPTH} levels."
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and "\x00" in key:
                    return path.replace("\x00", "\\x00"), NUL_MESSAGE
                stack.append((item, path, depth + 1))
    return None


def query_problem(request: HttpRequest) -> tuple[str, str] | None:
    """(name, message) for a query parameter or path segment the API cannot take, or None."""
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            return name.replace("\x00", "\\x00"), NUL_MESSAGE
    if "\x00" in request.path:
        return "path", NUL_MESSAGE
    return None


def guarded(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view`` behind the checks DRF has no place for: a query parameter or a path with a NUL
    (a 400 naming it), a body declared over the limit (a 413, before anything reads it: Django's
    own check answers with its HTML 400 page)."""
    from integrations.api.errors import error_body  # (not at import: DRF's views import this module)

    @wraps(view)  # (keeps ``cls`` and ``csrf_exempt``: the schema generator and Django read them)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        problem = query_problem(request)
        if problem is not None:
            name, message = problem
            return JsonResponse(error_body(400, f"Invalid input: {name}.", {name: [message]}), status=400)
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > body_limit():
            return JsonResponse(error_body(413, str(RequestTooLarge(body_limit()).detail)), status=413)
        return view(request, *args, **kwargs)

    return checked
