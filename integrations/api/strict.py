"""JSON types as the schema says them (and, where a serializer asks, only the keys it names).

DRF's fields take more than their schema says: a CharField takes 42 and stores "42", an
IntegerField takes "42", a BooleanField takes "yes" and 1. A client built
from the schema never sends those; one that does has a bug the API should name, not guess at
(and a generated test of the contract sends them to see them refused).
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import fields, relations, serializers

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema
    from drf_spectacular.utils import Direction

# (field kind, the JSON types its schema names, what the error says), the most specific first.
KINDS = (
    (fields.BooleanField, (bool,), "Must be true or false."),
    # A decimal as a string ("31.4") or a number (31.4): PMS send weights as numbers (schema.py).
    (fields.DecimalField, (str, int, float), 'A decimal number, e.g. "31.4" or 31.4.'),
    (fields.IntegerField, (int, float), "Must be a whole number."),  # (5.0 is; DRF refuses 5.5)
    (fields.CharField, (str,), "Must be a string."),
    (relations.PrimaryKeyRelatedField, (int, float), "Must be a record id (a whole number)."),
    (relations.SlugRelatedField, (str,), "Must be a string."),
)


LISTS = (serializers.ListSerializer, fields.ListField, relations.ManyRelatedField)


def type_error(field: fields.Field[Any, Any, Any, Any], value: object) -> str | None:
    """What is wrong with ``value``'s JSON type for ``field``, or None."""
    if value is None:
        return None  # null: the field's own allow_null answers
    for kind, types, message in KINDS:
        if isinstance(field, kind):
            if isinstance(value, bool) and bool not in types:
                return message
            return None if isinstance(value, types) else message
    return None


# What StrictTypes is mixed into: for the type checker a Serializer (whose fields and
# to_internal_value it uses), at run time nothing, so each serializer's own base stays its base.
if TYPE_CHECKING:
    _Serializer = serializers.Serializer[Any]
else:
    _Serializer = object


class StrictTypes(_Serializer):
    """A serializer mixin: each field's value in the JSON type its schema names, else a 400
    naming the field, before DRF converts it."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            errors: dict[str, list[str]] = {}
            for field in self._writable_fields:
                name = field.field_name  # (a bound field's: never None)
                if name is not None and name in data:
                    value = data[name]
                    if isinstance(field, LISTS):
                        continue  # their items are checked by the item's field
                    problem = type_error(field, value)
                    if problem:
                        errors[name] = [problem]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class KnownFieldsOnly(_Serializer):
    """A serializer mixin: a key that names no field the request may write is a 400 naming it.
    DRF drops such keys without a word, so a client that misspells one (``"teleradiolgy"``) or
    sends one that is only shown (``"status"``) would be answered 200 with nothing done. The
    request schema says so too (``additionalProperties: false``, KnownFieldsOnlySchema)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            writable = {field.field_name for field in self._writable_fields if field.field_name}
            unknown = [name for name in data if name not in writable]
            if unknown:
                raise serializers.ValidationError(
                    {
                        name: [f"Not a field this request takes (it takes: {', '.join(sorted(writable))})."]
                        for name in unknown
                    }
                )
        return super().to_internal_value(data)


class KnownFieldsOnlySchema(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """KnownFieldsOnly's request components close their properties, so a client (and a
    generated test) knows that any other key is refused."""

    target_class = KnownFieldsOnly
    match_subclasses = True

    def map_serializer(self, auto_schema: "AutoSchema", direction: "Direction") -> dict[str, Any]:
        # (What drf-spectacular would make, as its extension docs say to get it.)
        schema: dict[str, Any] = auto_schema._map_serializer(  # type: ignore[no-untyped-call]
            self.target, direction, bypass_extensions=True
        )
        if direction == "request":
            schema["additionalProperties"] = False
        return schema
