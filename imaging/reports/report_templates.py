"""Which report templates fit a study: the viewer's report panel offers these first, the rest
after them. A read, so a selector; the templates themselves are edited in the admin."""

from dataclasses import dataclass

from imaging.models import ReportTemplate, Series, Study

# Body Part Examined (0018,0015) is a CS of PS3.16 Annex L's defined terms (CHEST, KNEE, SKULL,
# PELVIS...), but veterinary modalities often send their own words for the same region.
REGION = {"THORAX": "CHEST", "STIFLE": "KNEE", "SKULL": "HEAD", "BRAIN": "HEAD", "HIP": "PELVIS"}


def _region(body_part: str) -> str:
    body_part = body_part.strip().upper()
    return REGION.get(body_part, body_part)


@dataclass(frozen=True)
class TemplateChoice:
    suggested: list[ReportTemplate]  # best first
    others: list[ReportTemplate]  # by name


def report_templates_for(*, study: Study) -> TemplateChoice:
    """The active templates that fit the study, best first: its order's procedure, then the
    modality and body part of its series (a study without an order has only those), then the
    templates for any study; within each, those written for the animal's species before those for
    any. A template written for another species is never suggested; when the species is not
    known (no animal linked), every species' template is."""
    procedure_id = study.order.procedure_id if study.order_id else None
    modalities: set[str] = set()
    regions: set[str] = set()
    for modality, body_part in Series.objects.filter(study=study).values_list("modality", "body_part"):
        modalities.add(modality.strip().upper())
        if body_part:
            regions.add(_region(body_part))
    if study.order_id:
        modalities.add(study.order.procedure.modality_type.upper())
        if study.order.procedure.body_part:
            regions.add(_region(study.order.procedure.body_part))
    species_id = study.patient.species_id if study.patient_id else None

    def rank(template: ReportTemplate) -> int | None:
        if species_id and template.species_id not in (None, species_id):
            return None
        if procedure_id and template.procedure_id == procedure_id:
            fit = 0
        elif template.modality_type and template.modality_type.upper() in modalities:
            if template.body_part and _region(template.body_part) not in regions:
                return None
            fit = 1 if template.body_part else 2
        elif not (template.procedure_id or template.modality_type):
            fit = 3  # for any study
        else:
            return None
        # The species' own wording before the general one.
        return fit * 2 + (0 if template.species_id else 1)

    templates = list(ReportTemplate.objects.filter(active=True).order_by("name"))
    ranked = [(rank(template), template) for template in templates]
    suggested = [template for fit, template in sorted(
        ((fit, t) for fit, t in ranked if fit is not None), key=lambda pair: (pair[0], pair[1].name)
    )]  # fmt: skip
    chosen = {template.pk for template in suggested}
    return TemplateChoice(suggested=suggested, others=[t for t in templates if t.pk not in chosen])
