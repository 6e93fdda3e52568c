"""The ingest's Celery tasks. Each keeps its registered name from before imaging/ was split by
feature (imaging.tasks.<name>): beat (settings.CELERY_BEAT_SCHEDULE) and the services' send_task
calls use it, and messages queued by an older version carry it."""

from celery import shared_task
from django.db import IntegrityError, OperationalError

from imaging.ingest import index, thumbnails


# Retried on the database's transient errors and on a concurrent insert of the same study or
# instance by another worker (the retry then finds it). Ack late: a worker that dies mid-task
# leaves the message to be delivered again (settings.CELERY_TASK_ACKS_LATE).
@shared_task(
    name="imaging.tasks.instances_ingest",
    autoretry_for=(OperationalError, IntegrityError), retry_backoff=True, max_retries=10,
)  # fmt: skip
def instances_ingest(messages: list[index.IndexMessage]) -> None:
    index.instances_index(messages=messages)


@shared_task(name="imaging.tasks.storage_sweep")
def storage_sweep(days: int | None = 2, min_age_seconds: float = 60) -> int:
    """Periodic (Celery beat): index what the queue missed."""
    return index.storage_sweep(days=days, min_age_seconds=min_age_seconds)


@shared_task(
    name="imaging.tasks.thumbnail_render",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def thumbnail_render(series_id: int) -> None:
    thumbnails.series_thumbnail_render(series_id=series_id)
