from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self):
        from imaging.events import order_event_subscribe

        order_event_subscribe(_order_event_queue)


def _order_event_queue(order_id, event):
    """After the commit: build and queue the outbound messages in a worker, not in the request
    or the DICOM association that changed the order."""
    import logging

    from celery import current_app

    try:
        current_app.send_task("integrations.tasks.hl7_order_event", args=[order_id, event])
    except Exception:
        logging.getLogger("integrations.hl7").exception("could not queue %s for order %s", event, order_id)
