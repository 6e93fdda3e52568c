"""imaging's Celery tasks. Celery's autodiscovery imports each app's tasks.py, so the tasks that
live with their feature (imaging/reconcile/tasks.py) are imported here; every one keeps its
registered name imaging.tasks.<name>, which beat (settings.CELERY_BEAT_SCHEDULE) and the
services' send_task calls use, and which messages queued by an older version carry."""
from celery import shared_task
from django.db import IntegrityError, OperationalError

from imaging import services, thumbnails
from imaging.reconcile.tasks import study_headers_rewrite_task  # noqa: F401  (registered by this import)


# Retried on the database's transient errors and on a concurrent insert of the same study or
# instance by another worker (the retry then finds it). Ack late: a worker that dies mid-task
# leaves the message to be delivered again (settings.CELERY_TASK_ACKS_LATE).
@shared_task(autoretry_for=(OperationalError, IntegrityError), retry_backoff=True, max_retries=10)
def instances_ingest(messages):
    services.instances_index(messages=messages)


@shared_task
def storage_sweep(days=2, min_age_seconds=60):
    """Periodic (Celery beat): index what the queue missed."""
    return services.storage_sweep(days=days, min_age_seconds=min_age_seconds)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def thumbnail_render(series_id):
    thumbnails.series_thumbnail_render(series_id=series_id)
