"""Template tags of sending: the active destinations for a page that offers a send without its
view knowing about sending (the viewer's Send panel, templates/imaging/viewer/_send_panel.html)."""

from django import template
from django.db.models import QuerySet

from sending.models import Destination

register = template.Library()


@register.simple_tag
def send_destinations() -> QuerySet[Destination]:
    return Destination.objects.filter(active=True).order_by("name")
