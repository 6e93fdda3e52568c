"""The services' transactions."""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import OperationalError, connection, transaction

# PostgreSQL undid the transaction for a deadlock (40P01) or a serialization failure (40001);
# its documentation asks the application to run it again (PostgreSQL 13.2, 13.3.4).
RETRYABLE = {"40P01", "40001"}

Params = ParamSpec("Params")
Result = TypeVar("Result")


def service_atomic(func: Callable[Params, Result]) -> Callable[Params, Result]:
    """``transaction.atomic`` for a service, with a keyword its caller may pass:
    ``savepoints=False`` opens no savepoint when the service runs inside a transaction. The
    service declares it (``savepoints: bool = True``) so that its callers' arguments are
    checked as written; this wrapper is what reads it.

    For a caller that undoes its whole transaction on any error (the HL7 listener: a message
    is applied whole or refused whole), a savepoint per service call buys nothing and costs
    two round trips to the database. An error in such a service then marks the transaction
    for rollback, so that caller must not catch it and carry on inside the transaction. The
    choice is the caller's and is written at its call (``patient_upsert(..., savepoints=False)``),
    never read from the context the service happens to run in."""

    @functools.wraps(func)
    def atomic(*args: Params.args, **kwargs: Params.kwargs) -> Result:
        with transaction.atomic(savepoint=bool(kwargs.get("savepoints", True))):
            return func(*args, **kwargs)

    return atomic


def retried(work: Callable[[], Result], *, attempts: int = 3) -> Result:
    """Run ``work()`` in a transaction of its own, again when PostgreSQL undid it for a deadlock
    or a serialization failure: two requests editing related records at once (animals sharing an
    owner rewrite each other's search words) are then both applied instead of one being a 500.

    For an adapter's outermost transaction only (inside another, the undone work cannot be run
    again alone). ``work`` must read what it changes afresh on each run: the objects of an undone
    run hold values the database no longer has."""
    for attempt in range(attempts):
        try:
            with transaction.atomic():
                return work()
        except OperationalError as error:
            code = getattr(error.__cause__, "sqlstate", None)
            if code not in RETRYABLE or attempt == attempts - 1 or connection.in_atomic_block:
                raise
    raise ValueError(f"attempts must be at least 1, not {attempts}")
