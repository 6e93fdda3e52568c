"""The errors every endpoint can answer, written into the OpenAPI schema once (a drf-spectacular
postprocessing hook) rather than on each view: the one error shape of errors.py, with examples."""

from typing import Any

from drf_spectacular.generators import SchemaGenerator
from rest_framework.request import Request

# An OpenAPI document as drf-spectacular hands it to a hook: nested JSON.
Document = dict[str, Any]

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "example": "validation_error"},
                "message": {"type": "string", "example": "Invalid input: species."},
                "fields": {
                    "type": "object",
                    "additionalProperties": {},
                    "example": {"species": ["Unknown species code K9 in acme; map it in the crosswalk."]},
                },  # fmt: skip
            },
        }
    },
}

EXAMPLES = {
    "400": ("Invalid input; `fields` names each bad field", "validation_error", "Invalid input: name."),
    "401": (
        "No API key, or a key that is not valid",
        "not_authenticated",
        "Authentication credentials were not provided.",
    ),
    "403": (
        "The client's scopes do not allow this",
        "permission_denied",
        "This API client has no 'patients:write' scope.",
    ),
    "404": ("No such record", "not_found", "No such patient."),
    "405": ("Method not allowed", "method_not_allowed", 'Method "DELETE" not allowed.'),
    "406": ("Only JSON is served", "not_acceptable", "Could not satisfy the request Accept header."),
    "409": (
        "The record's state does not allow it (or it exists already)",
        "conflict",
        "Order VP00000042 is cancelled; it can no longer be rescheduled.",
    ),
    "412": (
        "If-Match names an older version of the record",
        "precondition_failed",
        "The record has changed since you read it (If-Match does not match its ETag).",
    ),
    "413": (
        "The body is over the size limit (2.5 MB)",
        "request_too_large",
        "The request body is over 2,621,440 bytes.",
    ),
    "415": ("Send JSON", "unsupported_media_type", 'Unsupported media type "text/plain" in request.'),
    "429": (
        "Over the client's rate limit; see Retry-After",
        "rate_limited",
        "Request was throttled. Expected available in 12 seconds.",
    ),
}
WRITES = {"post", "put", "patch", "delete"}
# What parsers.guarded refuses in any query parameter or path segment, said where a client reads it.
NO_NUL = "^[^\\u0000]*$"


def error_responses(
    result: Document, generator: SchemaGenerator, request: Request | None, public: bool
) -> Document:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/") or path == "/api/v1/health":
            continue
        for method, operation in operations.items():
            codes = [c for c in EXAMPLES if c not in ("409", "412", "413", "415") or method in WRITES]
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if (
                    parameter["in"] in ("query", "path")
                    and schema.get("type") == "string"
                    and not ({"pattern", "enum", "format"} & set(schema))
                ):
                    schema["pattern"] = NO_NUL
            if method in ("post", "put", "patch"):
                codes.append("413")
            responses = operation.setdefault("responses", {})
            for code in codes:
                description, error_code, message = EXAMPLES[code]
                example = {"error": {"code": error_code, "message": message}}
                responses.setdefault(code, {
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"},
                                                     "examples": {error_code: {"value": example}}}},
                })  # fmt: skip
    return result


def decimals_as_numbers_too(
    result: Document, generator: SchemaGenerator, request: Request | None, public: bool
) -> Document:
    """A decimal in a request body may be a JSON number as well as a string ("31.4" or 31.4):
    practice-management systems send weights as numbers, and DRF has always taken them
    (strict.py lets them through). Responses keep the string, which loses no digits."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if not name.endswith("Request") and not name.startswith("Patched"):
            continue
        for prop, schema in component.get("properties", {}).items():
            if schema.get("type") == "string" and schema.get("format") == "decimal":
                number: dict[str, Any] = {"type": "number"}
                for bound in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                    if bound in schema:
                        number[bound] = schema[bound]
                nullable = schema.pop("nullable", None)
                component["properties"][prop] = {
                    "oneOf": [schema, number],
                    **({"nullable": True} if nullable else {}),
                }
    return result
