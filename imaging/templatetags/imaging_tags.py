from django import template

from imaging.models import Study

register = template.Library()


@register.simple_tag
def reconciliation_count():
    # The partial index study_unmatched keeps this cheap on every page.
    return Study.objects.filter(link=Study.Link.UNMATCHED).count()


@register.filter
def modalities(study):
    """The study's modalities, from its (prefetched) series: 'CR, US'."""
    return ", ".join(dict.fromkeys(s.modality for s in study.series.all() if s.modality))
