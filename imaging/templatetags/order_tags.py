"""What the scheduling pages show for an order: which actions its status allows, and who it is for."""

from django import template

from imaging.models import ImagingOrder
from vetclinic.audit.models import Channel

register = template.Library()
Status = ImagingOrder.Status
# The statuses imaging.orders.services.order_reschedule accepts (it refuses the others, whatever is shown).
RESCHEDULABLE = (Status.SCHEDULED, Status.ARRIVED, Status.DISCONTINUED)
# The order page's buttons, one per status the order may move to (ImagingOrder.TRANSITIONS).
ACTION_LABELS = {
    Status.ARRIVED: "Mark arrived",
    Status.SCHEDULED: "Back to scheduled",
    Status.IN_PROGRESS: "Mark in progress",
    Status.COMPLETED: "Mark completed",
    Status.REPORTED: "Mark reported",
    Status.DISCONTINUED: "Discontinue",
    Status.CANCELLED: "Cancel order",
}


@register.filter
def can_become(order, status):
    return order.can_become(status)


@register.filter
def reschedulable(order):
    return order.status in RESCHEDULABLE


@register.filter
def next_statuses(order):
    """[(status, button label)] in the order of ACTION_LABELS."""
    return [(status.value, label) for status, label in ACTION_LABELS.items() if order.can_become(status)]


@register.filter
def owner_family(patient):
    """The owner's family name (or organisation) from the prefetched ownerships, as the
    modality shows it in Patient's Name."""
    owner = patient.primary_owner
    return owner.dicom_family_name if owner else ""


@register.filter
def status_label(value):
    """'in_progress' -> 'In progress' (the status history stores the codes)."""
    return Status(value).label if value in Status.values else value


@register.filter
def channel_label(value):
    return Channel(value).label if value in Channel.values else value


@register.filter
def kg(value):
    """31.4 rather than 31.400 (as WeightRecord.kg_display)."""
    return format(value.normalize(), "f") if value is not None else ""
