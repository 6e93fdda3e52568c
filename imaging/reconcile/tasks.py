from celery import shared_task
from django.db import OperationalError

from imaging.reconcile import services


# Retried on the database's transient errors and on storage errors; a retry skips the objects
# already rewritten. Registered under its name from before imaging/ was split by feature, so
# that a task queued by an older version still runs (services.REWRITE_TASK sends it by name).
@shared_task(
    name="imaging.tasks.study_headers_rewrite_task",
    autoretry_for=(OperationalError, OSError), retry_backoff=True, max_retries=10,
)  # fmt: skip
def study_headers_rewrite_task(study_id: int) -> int:
    return services.study_headers_rewrite(study_id=study_id)
