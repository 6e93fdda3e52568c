"""One error shape for every API error (documented in the schema):

{"error": {"code": "validation_error", "message": "…", "fields": {"species": ["…"]}}}
"""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

# A field's errors: its messages, or (a nested serializer's) the errors of its own fields.
FieldErrors = list[Any] | dict[str, Any]

CODES = {
    400: "validation_error", 401: "not_authenticated", 403: "permission_denied", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 412: "precondition_failed",
    413: "request_too_large", 415: "unsupported_media_type", 428: "precondition_required", 429: "rate_limited",
}  # fmt: skip


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The record has changed since you read it (If-Match does not match its ETag)."
    default_code = "precondition_failed"


def error_body(
    status_code: int, message: str, fields: dict[str, Any] | None = None, code: str | None = None
) -> dict[str, dict[str, Any]]:
    body: dict[str, Any] = {"code": code or CODES.get(status_code, "error"), "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def _flat_fields(detail: dict[str, object]) -> dict[str, FieldErrors]:
    return {k: _flat(v) for k, v in detail.items()}


def _flat(detail: object) -> FieldErrors:
    if isinstance(detail, dict):
        return _flat_fields(detail)
    if isinstance(detail, list):
        return [str(d) if not isinstance(d, (dict, list)) else _flat(d) for d in detail]
    return [str(detail)]


def _errors(exc: DjangoValidationError) -> list[DjangoValidationError]:
    if hasattr(exc, "error_dict"):
        return [e for errors in exc.error_dict.values() for e in errors]
    return list(exc.error_list) if hasattr(exc, "error_list") else [exc]


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError) and any(e.code == "invalid_state" for e in _errors(exc)):
        exc = Conflict(" ".join(exc.messages))  # the input was fine; the record's state says no
    if isinstance(exc, DjangoValidationError):  # a service said no: a 400 naming the fields
        by_field = exc.message_dict if hasattr(exc, "message_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(by_field)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 (and the log)
    detail = response.data
    if isinstance(exc, exceptions.ValidationError):
        fields = _flat_fields(detail) if isinstance(detail, dict) else {"non_field_errors": _flat(detail)}
        names = ", ".join(fields)
        response.data = error_body(400, f"Invalid input: {names}.", fields)
    else:
        message = detail.get("detail", str(detail)) if isinstance(detail, dict) else str(detail)
        response.data = error_body(response.status_code, str(message))
    if isinstance(exc, exceptions.Throttled):
        wait = exc.wait  # type: ignore[attr-defined]  # (Throttled.__init__ sets it; the DRF stubs leave it out)
        if wait:
            response["Retry-After"] = str(int(wait) + 1)
    return response
