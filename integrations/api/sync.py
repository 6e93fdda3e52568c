"""What makes the API safe to sync against: ETags and If-Match, idempotent POSTs (and
``?updated_since=``, filters.py).

An ETag is the record's id and last change (``updated``): a PMS that sends ``If-Match`` with
the ETag it read gets 412 if someone changed the record since, instead of overwriting it.
"""

import hashlib
from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from imaging.models import ImagingOrder, Report
from integrations.api.errors import PreconditionFailed
from patients.models import Owner, Patient

# The records the API answers with an ETag and guards with If-Match.
Versioned = Patient | Owner | ImagingOrder | Report


def etag(instance: Versioned) -> str:
    stamp = f"{instance._meta.label}:{instance.pk}:{instance.updated.isoformat()}"
    return '"' + hashlib.sha256(stamp.encode()).hexdigest()[:32] + '"'


def if_match_check(request: Request, instance: Versioned) -> None:
    """412 when If-Match names another version of the record (RFC 9110 13.1.1)."""
    wanted = request.headers.get("If-Match")
    if not wanted or wanted.strip() == "*":
        return
    tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",")}
    if etag(instance) not in tags:
        raise PreconditionFailed()


# A view's POST handler: (view, request, *path arguments) -> its answer.
Post = Callable[..., Response]

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "maxLength": 255},
    OpenApiParameter.HEADER,
    description="Send the same key again with the same request (a retry) and it is answered as the first "
    "time, creating nothing; a different request under the key is a 409.",
)


def idempotent(post: Post) -> Post:
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
    def wrapper(view: APIView, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key or not isinstance(request.user, ClientUser):
            return post(view, request, *args, **kwargs)
        if len(key) > 255:
            raise ValidationError({"Idempotency-Key": ["At most 255 characters."]})
        client = request.user.client
        body_hash = hashlib.sha256(request.body).hexdigest()

        def replay(stored: IdempotencyKey) -> Response:
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
