"""What makes the API safe to sync against: ETags and If-Match, ``updated_since``.

An ETag is the record's id and last change (``updated``): a PMS that sends ``If-Match`` with
the ETag it read gets 412 if someone changed the record since, instead of overwriting it.
"""

import hashlib
from datetime import UTC

from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
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


# The query parameters every list shares, typed in the schema as they are checked: a client (or a
# generated test) sends what is accepted, and anything else is a 400 the schema foretells.
UPDATED_SINCE = OpenApiParameter(
    "updated_since", OpenApiTypes.DATETIME,
    description="ISO 8601 date-time with a time zone: only records changed since",
)  # fmt: skip
# A record id: what RecordId (urls.py) and record_id_param take.
RECORD_ID = {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}


def record_id_parameter(name, description=None):
    return OpenApiParameter(name, RECORD_ID, description=description)


def record_id_param(value, name):
    """A record id from a query parameter: digits that fit the database's integers."""
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise ValidationError({name: ["A record id (a whole number)."]})
    return int(value)


def updated_since(queryset, request):
    """``?updated_since=<ISO 8601 date-time>``: records changed at or after that moment."""
    moment = updated_since_param(request)
    return queryset if moment is None else queryset.filter(updated__gte=moment)


def updated_since_param(request):
    """The moment ``?updated_since=`` names, or None without one (400 if it names none)."""
    value = request.query_params.get("updated_since")
    if value is None:  # (given, even empty, it must be a date-time)
        return None
    try:
        moment = parse_datetime(value)
    except ValueError:  # well formed, but no such moment (2026-02-30T25:00:00Z)
        moment = None
    if moment is not None and moment.tzinfo is not None:
        try:
            # In UTC: ISO 8601 offsets go to ±23:59, PostgreSQL's to ±15:59 (a DataError, a 500).
            return moment.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first moment there is
            pass
    raise ValidationError(
        {"updated_since": ["An ISO 8601 date-time with a time zone, e.g. 2026-11-23T08:00:00Z."]}
    )


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "maxLength": 255},
    OpenApiParameter.HEADER,
    description="Send the same key again with the same request (a retry) and it is answered as the first "
    "time, creating nothing; a different request under the key is a 409.",
)


def idempotent(post):
    """A POST honouring ``Idempotency-Key``: the first answer (2xx) is stored with the key; the
    same request with the same key gets it again, with ``Idempotent-Replayed: true``; the key
    reused for a different request is a 409. The schema says so for the POSTs that do (only)."""
    from functools import wraps

    from django.db import IntegrityError, transaction
    from drf_spectacular.utils import extend_schema
    from rest_framework.response import Response

    from integrations.api.auth import ClientUser
    from integrations.api.errors import Conflict
    from integrations.models import IdempotencyKey

    @wraps(post)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key or not isinstance(request.user, ClientUser):
            return post(view, request, *args, **kwargs)
        if len(key) > 255:
            raise ValidationError({"Idempotency-Key": ["At most 255 characters."]})
        client = request.user.client
        body_hash = hashlib.sha256(request.body).hexdigest()

        def replay(stored):
            if (stored.method, stored.path, stored.body_hash) != (request.method, request.path, body_hash):
                raise Conflict("This Idempotency-Key was used for a different request.")
            return Response(
                stored.response, status=stored.status_code, headers={"Idempotent-Replayed": "true"}
            )

        stored = IdempotencyKey.objects.filter(client=client, key=key).first()
        if stored is not None:
            return replay(stored)
        try:
            with transaction.atomic():
                response = post(view, request, *args, **kwargs)
                if 200 <= response.status_code < 300:
                    IdempotencyKey.objects.create(
                        client=client, key=key, method=request.method, path=request.path[:255],
                        body_hash=body_hash, status_code=response.status_code, response=response.data,
                    )  # fmt: skip
        except IntegrityError:
            # The same key at the same moment on another connection: its answer stands, ours
            # (and whatever it created) was rolled back with the transaction.
            return replay(IdempotencyKey.objects.get(client=client, key=key))
        return response

    return extend_schema(parameters=[IDEMPOTENCY_KEY])(wrapper)
