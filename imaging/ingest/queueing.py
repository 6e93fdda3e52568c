"""Indexing messages on their way to the worker: one Celery task per batch of objects that an
association stored (IngestBatch), and a broker that is down never failing a stored object
(instances_queue; the periodic sweep indexes what the queue missed)."""

import logging
import threading
import time

from celery import current_app

from imaging.ingest.index import IndexMessage
from vetclinic.cache import Kept

log = logging.getLogger(__name__)

# After a failure to queue, the broker is taken to be down for this long in this process.
broker_down = Kept("broker down", seconds=30, most=1)


def instances_queue(messages: list[IndexMessage]) -> None:
    """Queue indexing messages as one task. A broker that is down must not fail a stored image:
    the periodic sweep indexes whatever the queue missed, so after one failure we stop trying
    for a while."""
    if not messages or "down" in broker_down:
        return
    try:
        # By name: tasks import services, never the reverse (STYLE.md).
        current_app.send_task("imaging.tasks.instances_ingest", args=[messages], retry=False)
    except Exception:
        broker_down.set("down", True)
        log.exception("could not queue indexing of %s objects; the sweep will index them", len(messages))


class IngestBatch:
    """An association's indexing messages, queued in groups: one task per ``size`` objects or
    ``age`` seconds (checked as objects arrive), and the rest when the association ends. A
    task per object cost the worker more than indexing the object. Objects are added on the
    association's DUL thread and the rest flushed on its own thread when it is released or
    aborted (imaging/dicom/net/handlers.py): a lock keeps a message from falling between."""

    def __init__(self, size: int = 50, age: float = 0.5) -> None:
        self.size, self.age = size, age
        self.messages: list[IndexMessage] = []
        self.started = 0.0
        self.lock = threading.Lock()

    def add(self, message: IndexMessage) -> None:
        with self.lock:
            if not self.messages:
                self.started = time.monotonic()
            self.messages.append(message)
            full = len(self.messages) >= self.size or time.monotonic() - self.started >= self.age
        if full:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            messages, self.messages = self.messages, []
        instances_queue(messages)
