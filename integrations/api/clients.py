"""API clients: created, their key shown once; revoked."""

import secrets
from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.timezone import now

from integrations.models import ApiClient
from vetclinic.audit.services import Actor, audit_record
from vetclinic.cache import Kept


def _scopes_check(scopes: Sequence[str]) -> None:
    valid = {f"{r}:{m}" for r in ApiClient.RESOURCES for m in ("read", "write")} | {"*"}
    unknown = sorted(set(scopes) - valid)
    if unknown:
        raise ValidationError(
            {"scopes": f"Unknown scope(s): {', '.join(unknown)}. Valid: {', '.join(sorted(valid))}"}
        )


@transaction.atomic
def api_client_create(
    *, actor: Actor, name: str, scopes: Sequence[str], rate_limit: int = 600
) -> tuple[ApiClient, str]:
    """Returns (client, key); the key is not stored and cannot be shown again."""
    _scopes_check(scopes)
    if ApiClient.objects.filter(name=name).exists():
        raise ValidationError({"name": f"An API client named {name} exists."})
    prefix, key = ApiClient.key_new()
    client = ApiClient.objects.create(
        name=name,
        key_prefix=prefix,
        key_hash=ApiClient.key_hash_of(key),
        scopes=list(scopes),
        rate_limit=rate_limit,
    )
    audit_record(actor=actor, instance=client, action="create", changes={"scopes": [None, " ".join(scopes)]})
    return client, key


@transaction.atomic
def api_client_revoke(*, actor: Actor, client: ApiClient) -> None:
    ApiClient.objects.filter(pk=client.pk).update(active=False, revoked_at=now())
    audit_record(actor=actor, instance=client, action="revoke", changes={"active": ["True", "False"]})
    verified_keys.forget()  # at once in this process, and again once committed: a request in
    transaction.on_commit(verified_keys.forget)  # between could have kept the key as it still was


# A verified key is kept in the process for KEY_KEPT_SECONDS: looking it up was a query on every
# request, as much as the rest of a small request cost. Revoking with api_client_revoke forgets
# every kept key in the process that revokes (the admin's); the other processes (the other web
# workers) refuse the key within KEY_KEPT_SECONDS, and see changed scopes and rate limits then.
# Keys that fail are not kept: a key made a moment ago works at once everywhere.
KEY_KEPT_SECONDS = 5
verified_keys = Kept("verified API keys", seconds=KEY_KEPT_SECONDS)  # SHA-256 of the key -> ApiClient


def api_client_for_key(key: str) -> ApiClient | None:
    """The active client this key belongs to, or None (constant-time comparison)."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "vp":
        return None
    digest = ApiClient.key_hash_of(key)
    kept: ApiClient | None = verified_keys.get(digest)
    if kept is not None:
        return kept
    client = ApiClient.objects.filter(key_prefix=parts[1], active=True).first()
    if client is None or not secrets.compare_digest(client.key_hash, digest):
        verified_keys.forget(digest)
        return None
    verified_keys.set(digest, client)
    return client
