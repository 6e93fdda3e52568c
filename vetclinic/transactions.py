"""The services' transactions."""

import functools

from django.db import transaction


def service_atomic(func):
    """``transaction.atomic`` for a service, with a keyword its caller may pass:
    ``savepoints=False`` opens no savepoint when the service runs inside a transaction.

    For a caller that undoes its whole transaction on any error (the HL7 listener: a message
    is applied whole or refused whole), a savepoint per service call buys nothing and costs
    two round trips to the database. An error in such a service then marks the transaction
    for rollback, so that caller must not catch it and carry on inside the transaction. The
    choice is the caller's and is written at its call (``patient_upsert(..., savepoints=False)``),
    never read from the context the service happens to run in."""

    @functools.wraps(func)
    def atomic(*args, savepoints=True, **kwargs):
        with transaction.atomic(savepoint=savepoints):
            return func(*args, **kwargs)

    return atomic
