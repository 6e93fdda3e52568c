from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self):
        from imaging.orders.events import order_event_subscribe
        from integrations.webhooks.services import order_event_queue, patient_event_queue
        from patients.events import patient_event_subscribe

        order_event_subscribe(_order_event_queue)
        order_event_subscribe(order_event_queue)  # webhooks
        patient_event_subscribe(patient_event_queue)

        from django.db.models.signals import post_save

        from integrations.hl7.held import mapping_saved
        from patients.models import CodeMapping

        # A crosswalk entry, wherever it is made, moves what waited for its code (held.py).
        post_save.connect(mapping_saved, sender=CodeMapping, dispatch_uid="crosswalk_apply")


# The order events HL7 outbound sends (an ORM^O01 status update); the others are webhooks' only.
HL7_EVENTS = {"study_received", "order_completed", "report_final"}


def _order_event_queue(order_id, event, **details):
    """After the commit: build and queue the outbound messages in a worker, not in the request
    or the DICOM association that changed the order."""
    import logging

    from celery import current_app

    if event not in HL7_EVENTS:
        return
    try:
        current_app.send_task("integrations.tasks.hl7_order_event", args=[order_id, event])
    except Exception:
        logging.getLogger("integrations.hl7").exception("could not queue %s for order %s", event, order_id)
