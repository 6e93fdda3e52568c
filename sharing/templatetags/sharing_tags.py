"""The study page's Sharing section: ``{% load sharing_tags %}{% study_sharing study %}``."""

from typing import Any

from django import template
from django.db.models import Q
from django.utils.timezone import now

from imaging.models import Study
from imaging.studies.priors import animal_records
from sending.models import Destination
from sharing.models import ConsultReport, ConsultRequest, ShareLink

register = template.Library()


@register.inclusion_tag("sharing/_study_sharing.html", takes_context=True)
def study_sharing(context: dict[str, Any], study: Study) -> dict[str, Any]:
    moment = now()
    links = list(ShareLink.objects.filter(study=study).select_related("consult"))
    for link in links:
        link.current_state = link.state(moment)
    others = (
        Study.objects.filter(patient_id__in=animal_records(study.patient)).exclude(pk=study.pk)
        if study.patient_id
        else Study.objects.none()
    )
    reports = list(ConsultReport.objects.filter(study=study).select_related("consult", "amends"))
    return {
        "study": study,
        "links": links,
        "consults": ConsultRequest.objects.filter(study=study).select_related("sent_to"),
        "destinations": Destination.objects.filter(active=True),
        "reports": reports,
        "unseen": sum(1 for report in reports if report.seen_at is None),
        "others": others.order_by("-study_date", "-pk")[:20],
        "perms": context.get("perms"),
        "csrf_token": context.get("csrf_token"),
        "kinds": ShareLink.Kind.choices,
    }


@register.simple_tag
def consult_badge(study: Study) -> int:
    """How many consult reports the clinic has not acknowledged yet."""
    return ConsultReport.objects.filter(Q(study=study), seen_at__isnull=True).count()
