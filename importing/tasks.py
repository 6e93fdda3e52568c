from celery import shared_task

from importing import services

# How long linking waits for the ingest worker to index an upload's files (one try a second).
WAIT_TRIES = 600


@shared_task(bind=True, name="importing.tasks.upload_link_task", max_retries=WAIT_TRIES)
def upload_link_task(self, upload_id: int) -> None:  # type: ignore[no-untyped-def]
    final = self.request.retries >= WAIT_TRIES
    if not services.upload_link(upload_id=upload_id, final=final):
        raise self.retry(countdown=1)
