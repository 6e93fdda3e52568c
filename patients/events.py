"""Patient events that other systems hear about (webhooks).

patients does not import the integrations: they subscribe here (in their AppConfig.ready), and
patients/services.py publishes. Subscribers run after the commit, so nobody is told of a change
that was rolled back.
"""

from django.db import transaction

PATIENT_UPDATED = "patient_updated"  # registered or changed; details: changed (field names)
PATIENT_MERGED = "patient_merged"  # published for the record merged away (merged_into is set)
EVENTS = (PATIENT_UPDATED, PATIENT_MERGED)

_subscribers = []


def patient_event_subscribe(callback):
    """``callback(patient_id, event, **details)`` is called after the commit of each published event."""
    if callback not in _subscribers:
        _subscribers.append(callback)


def patient_event_publish(patient, event, **details):
    for callback in list(_subscribers):
        transaction.on_commit(lambda callback=callback: callback(patient.pk, event, **details))
