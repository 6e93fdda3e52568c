"""Order events that other systems hear about (HL7 outbound, webhooks).

imaging does not import the integrations: they subscribe here (in their AppConfig.ready), and
the order and report services publish. Subscribers run after the commit, so nobody is told of
a change that was rolled back.
"""

from django.db import transaction

STUDY_RECEIVED = "study_received"  # images for the order arrived
ORDER_COMPLETED = "order_completed"
REPORT_FINAL = "report_final"
ORDER_STATUS_CHANGED = "order_status_changed"  # details: old, new
EVENTS = (STUDY_RECEIVED, ORDER_COMPLETED, REPORT_FINAL, ORDER_STATUS_CHANGED)

_subscribers = []


def order_event_subscribe(callback):
    """``callback(order_id, event, **details)`` is called after the commit of each published
    event; ``details`` say what the order looked like then (a status moves on)."""
    if callback not in _subscribers:
        _subscribers.append(callback)


def order_event_publish(order, event, **details):
    for callback in list(_subscribers):
        transaction.on_commit(lambda callback=callback: callback(order.pk, event, **details))
