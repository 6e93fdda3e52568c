"""The animal's other studies, for the viewer's comparison (issue 16).

An animal is its linked record together with the records merged into it (patients/services.py
patient_merge keeps a merged duplicate as an alias, ``merged_into``). Studies are found through
that record only, never by the DICOM Patient ID in their headers: two clinics' or two days'
"P000123" need not be the same animal, and a study not linked to a record has no priors until
it is reconciled (imaging/reconcile/)."""

from dataclasses import dataclass, field
from datetime import date, time

from django.db.models import Count, F

from imaging.models import Report, Study
from imaging.studies.series_views import SeriesView, series_best_match, series_views
from patients.models import Patient

# Merging re-points aliases of the merged record to the survivor, so chains are one step long;
# the bound only guards against a cycle in hand-edited data.
CHAIN_LIMIT = 32


def animal_records(patient: Patient) -> set[int]:
    """The ids of every record that is this animal: the record the chain of merges ends in and
    every record merged into it, however indirectly."""
    root = patient
    for _ in range(CHAIN_LIMIT):
        if root.merged_into_id is None:
            break
        root = Patient.objects.only("pk", "merged_into").get(pk=root.merged_into_id)
    ids, frontier = {root.pk}, [root.pk]
    for _ in range(CHAIN_LIMIT):
        frontier = list(
            Patient.objects.filter(merged_into__in=frontier).exclude(pk__in=ids).values_list("pk", flat=True)
        )
        if not frontier:
            break
        ids.update(frontier)
    return ids


@dataclass
class Prior:
    study: Study
    earlier: bool  # taken before the study being read (else after it, or undated)
    series: list[SeriesView] = field(default_factory=list)
    # For each series of the study being read: the series of this one to compare it with.
    matches: dict[str, str] = field(default_factory=dict)

    @property
    def report_status(self) -> str:
        report = getattr(self.study, "report", None)
        return report.status if isinstance(report, Report) else "unread"

    def as_json(self) -> dict:
        study = self.study
        return {
            "pk": study.pk,
            "study_uid": study.study_instance_uid,
            "date": study.study_date.isoformat() if study.study_date else None,
            "earlier": self.earlier,
            "description": study.description,
            "accession_number": study.accession_number,
            "modalities": sorted({s.modality for s in self.series if s.modality}),
            "body_parts": sorted({s.body_part for s in self.series if s.body_part}),
            "series_count": study.series_count,
            "image_count": sum(s.images for s in self.series),
            "report_status": self.report_status,
            "series": [s.as_json() for s in self.series],
            "matches": self.matches,
        }


def _when(study: Study) -> tuple[date, time]:
    return (study.study_date or date.min, study.study_time or time.min)


def study_priors(study: Study) -> list[Prior]:
    """The other studies of the study's animal (its record and the records merged into it),
    newest first, each with its series and, for each series of ``study``, its best match
    (series_views.series_best_match). A study not linked to an animal has none. A fixed number
    of queries whatever the studies."""
    if study.patient_id is None:
        return []
    others = list(
        Study.objects.filter(patient_id__in=animal_records(study.patient))
        .exclude(pk=study.pk)
        .select_related("report")
        .annotate(series_count=Count("series"))
        # Newest first; a study without a date (a header that left it empty) last.
        .order_by(F("study_date").desc(nulls_last=True), F("study_time").desc(nulls_last=True), "-id")
    )
    views = series_views(study_ids=[study.pk, *(other.pk for other in others)])
    current = [view for view in views if view.study_id == study.pk]
    priors = []
    for other in others:
        series = [view for view in views if view.study_id == other.pk]
        matches = {}
        for view in current:
            best = series_best_match(view, series)
            if best is not None:
                matches[view.uid] = best.uid
        priors.append(Prior(study=other, earlier=_when(other) < _when(study), series=series, matches=matches))
    return priors
