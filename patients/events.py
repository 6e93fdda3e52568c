"""Patient events that other systems hear about (webhooks).

patients does not import the integrations: they subscribe here (in their AppConfig.ready), and
patients/services.py publishes. Subscribers run after the commit, so nobody is told of a change
that was rolled back.
"""

import functools
from collections.abc import Callable

from django.db import transaction
from django.db.models import Model

PATIENT_UPDATED = "patient_updated"  # registered or changed; details: changed (field names)
PATIENT_MERGED = "patient_merged"  # published for the record merged away (merged_into is set)
EVENTS = (PATIENT_UPDATED, PATIENT_MERGED)

# callback(pk, event, **details)
Subscriber = Callable[..., object]

_subscribers: list[Subscriber] = []


def patient_event_subscribe(callback: Subscriber) -> None:
    """``callback(patient_id, event, **details)`` is called after the commit of each published event."""
    if callback not in _subscribers:
        _subscribers.append(callback)


def patient_event_publish(patient: Model, event: str, **details: object) -> None:
    for callback in list(_subscribers):
        transaction.on_commit(functools.partial(callback, patient.pk, event, **details))
