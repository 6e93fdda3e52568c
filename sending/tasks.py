from celery import shared_task

from sending import services


@shared_task(bind=True, name="sending.tasks.send_task", max_retries=None, acks_late=True)
def send_task(self, send_id: int) -> str:
    """One attempt; when the destination is unreachable, again later with a doubling delay."""
    outcome = services.send_run(send_id)
    if outcome == services.RETRY:
        from sending.models import Send

        attempts = Send.objects.filter(pk=send_id).values_list("attempts", flat=True).first() or 1
        raise self.retry(countdown=services.retry_delay(attempts))
    return outcome


@shared_task(name="sending.tasks.routing_check")
def routing_check_task() -> int:
    return len(services.routing_check())


@shared_task(name="sending.tasks.sends_sweep")
def sends_sweep_task() -> int:
    return services.sends_sweep()
