from celery import shared_task

from integrations.hl7 import outbound


# Exponential backoff (2 s, 4 s, … capped at 10 minutes) until the PMS answers; an AE or AR
# is final and stays in the message log for someone to look at.
@shared_task(bind=True, max_retries=None)
def hl7_send(self, message_id):
    try:
        return outbound.message_send(message_id=message_id)
    except outbound.SendLater as later:
        raise self.retry(countdown=min(2 ** (self.request.retries + 1), 600), exc=later) from None


@shared_task
def hl7_order_event(order_id, event):
    return [m.pk for m in outbound.order_event(order_id, event)]
