"""The Celery app. Tasks live in each app's tasks.py, take ids and call services."""

import logging
import os

from celery import Celery
from celery.worker.consumer import Consumer as CeleryConsumer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetclinic.settings")
# A worker serves no URLs: Celery's Django fixup would run Django's system checks at every worker
# start, and they import every URLconf and view (over a second of CPU, more than the worker's own
# start). `migrate`, which `make run` and a deployment run first, and the web process still check,
# as for the DICOM and HL7 listeners (requires_system_checks = []).
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

log = logging.getLogger(__name__)

app = Celery("vetclinic")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class Consumer(CeleryConsumer):
    """Celery's consumer, surviving the loss of a Redis broker while it holds unacknowledged
    messages (settings.CELERY_WORKER_CONSUMER).

    Our worker nearly always holds some: tasks queued with a countdown (thumbnails, webhook
    retries) wait in the worker unacknowledged until their time, and with late acks so does
    the task running. When Redis goes away, Celery drops the broken connection in two steps:
    ``collect()`` closes its channels and detaches the transport, then ``close()``. kombu's
    Redis channel fails the first close (the BRPOP it was waiting on raises ConnectionError
    before the channel is marked closed), so the second close runs on a detached transport and
    its attempt to put the held messages back reads ``None.hostname``. That AttributeError is
    not a connection error, so it left the consumer and the worker exited for good
    ("Unrecoverable error: AttributeError … 'hostname'"), taking the embedded beat with it.

    The held messages cannot be put back anyway while the broker is down: Redis keeps them in
    its unacked set and hands them out again after the visibility timeout, and every task is
    idempotent. So an AttributeError from closing the connection already dropped is taken as
    the end of that connection; the rest of Celery's cleanup then runs without it.
    """

    def on_connection_error_after_connected(self, exc):
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError:
            if self.connection is not None:  # not the close of the dropped connection
                raise
            log.warning("the broker connection was lost while messages were held; "
                        "the broker hands them out again after its visibility timeout")  # fmt: skip
            super().on_connection_error_after_connected(exc)
