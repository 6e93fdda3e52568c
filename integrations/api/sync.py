"""What makes the API safe to sync against: ETags and If-Match, ``updated_since``.

An ETag is the record's id and last change (``updated``): a PMS that sends ``If-Match`` with
the ETag it read gets 412 if someone changed the record since, instead of overwriting it.
"""
import hashlib

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError

from integrations.api.errors import PreconditionFailed


def etag(instance):
    stamp = f"{instance._meta.label}:{instance.pk}:{instance.updated.isoformat()}"
    return '"' + hashlib.sha256(stamp.encode()).hexdigest()[:32] + '"'


def if_match_check(request, instance):
    """412 when If-Match names another version of the record (RFC 9110 13.1.1)."""
    wanted = request.headers.get("If-Match")
    if not wanted or wanted.strip() == "*":
        return
    tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",")}
    if etag(instance) not in tags:
        raise PreconditionFailed()


def updated_since(queryset, request):
    """``?updated_since=<ISO 8601 date-time>``: records changed at or after that moment."""
    value = request.query_params.get("updated_since")
    if not value:
        return queryset
    moment = parse_datetime(value)
    if moment is None or moment.tzinfo is None:
        raise ValidationError({"updated_since": ["An ISO 8601 date-time with a time zone, e.g. 2026-11-23T08:00:00Z."]})
    return queryset.filter(updated__gte=moment)
