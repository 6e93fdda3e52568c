"""Order events that other systems hear about (HL7 outbound, webhooks).

imaging does not import the integrations: they subscribe here (in their AppConfig.ready), and
the order and report services publish. Subscribers run after the commit, so nobody is told of
a change that was rolled back.
"""

import functools
from collections.abc import Callable

from django.db import transaction
from django.db.models import Model

STUDY_RECEIVED = "study_received"  # images for the order arrived
ORDER_COMPLETED = "order_completed"
REPORT_FINAL = "report_final"
ORDER_STATUS_CHANGED = "order_status_changed"  # details: old, new
EVENTS = (STUDY_RECEIVED, ORDER_COMPLETED, REPORT_FINAL, ORDER_STATUS_CHANGED)

# callback(pk, event, **details)
Subscriber = Callable[..., object]

_subscribers: list[Subscriber] = []


def order_event_subscribe(callback: Subscriber) -> None:
    """``callback(order_id, event, **details)`` is called after the commit of each published
    event; ``details`` say what the order looked like then (a status moves on)."""
    if callback not in _subscribers:
        _subscribers.append(callback)


def order_event_publish(order: Model, event: str, **details: object) -> None:
    for callback in list(_subscribers):
        transaction.on_commit(functools.partial(callback, order.pk, event, **details))
