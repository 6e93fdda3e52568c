"""Hanging protocols (imaging/models/hanging.py): which one fits a study, and which series goes
in which of its viewports. The viewer asks for this when it opens (viewer/src/compare.js).

The most specific protocol wins, as in a workstation's hanging protocol selection (PS3.3 C.23,
Hanging Protocol Definition: a protocol is chosen by modality, anatomy and, for us, species):
species + body part + modality, then body part + modality, then species + modality, then the
modality alone."""

from dataclasses import dataclass

from django.db.models import Q

from imaging.models import HangingProtocol, HangingViewport, Study
from imaging.models.hanging import terms
from imaging.studies.series_views import SeriesView, normalized, phrase_in, series_views


def _body_part_fits(protocol: HangingProtocol, series: list[SeriesView], study: Study) -> bool:
    """A series of the protocol's modality is of one of its body parts: by Body Part Examined
    (0018,0015), or, where the images leave it empty, by the body part named in the series' or
    the study's description ("Thorax R lat")."""
    parts = protocol.body_parts()
    for view in series:
        if view.modality != protocol.modality.upper():
            continue
        if view.body_part:
            if view.body_part in parts:
                return True
        elif any(
            phrase_in(part, view.text) or phrase_in(part, normalized(study.description)) for part in parts
        ):
            return True
    return False


def _specificity(protocol: HangingProtocol) -> int:
    return (2 if protocol.body_parts() else 0) + (1 if protocol.species_id else 0)


def hanging_protocol_for(study: Study, series: list[SeriesView] | None = None) -> HangingProtocol | None:
    """The active protocol that fits the study most specifically, or None. Among equals, the
    one for the modality most of the study's series have, then by name."""
    series = series_views(study_ids=[study.pk]) if series is None else series
    counts: dict[str, int] = {}
    for view in series:
        counts[view.modality] = counts.get(view.modality, 0) + 1
    if not counts:
        return None
    species_id = study.patient.species_id if study.patient_id else None
    candidates = (
        HangingProtocol.objects.filter(active=True, modality__in=list(counts))
        .filter(Q(species__isnull=True) | Q(species_id=species_id))
        .order_by("name", "pk")
    )
    fitting = [p for p in candidates if not p.body_parts() or _body_part_fits(p, series, study)]
    if not fitting:
        return None
    return max(fitting, key=lambda p: (_specificity(p), counts.get(p.modality, 0), -fitting.index(p)))


def _fit(rule: HangingViewport, view: SeriesView) -> int:
    """2: the View Position is one the rule names; 1: one of its keywords describes the series."""
    if view.view_position and view.view_position in {p.upper() for p in terms(rule.view_positions)}:
        return 2
    if any(phrase_in(keyword, view.text) for keyword in terms(rule.keywords)):
        return 1
    return 0


@dataclass
class Hung:
    position: int
    label: str
    series_uid: str | None
    matched: bool  # the series fits the viewport's rule (else it is the next series left over)

    def as_json(self) -> dict:
        return {
            "position": self.position,
            "label": self.label,
            "series_uid": self.series_uid,
            "matched": self.matched,
        }


def hanging_apply(protocol: HangingProtocol, series: list[SeriesView]) -> list[Hung]:
    """Which series goes in which viewport: in the protocol's order, each viewport takes the
    series that fits its rule best (View Position before keywords, then series order), each
    series at most once; a viewport no series fits takes the next series left over, so no
    viewport stays empty while the study has series to show."""
    rules = list(protocol.viewports.order_by("position"))
    used: set[str] = set()
    hung: list[Hung] = []
    for rule in rules:
        best, best_fit = None, 0
        for view in series:
            fit = _fit(rule, view) if view.uid not in used else 0
            if fit > best_fit:
                best, best_fit = view, fit
        if best is not None:
            used.add(best.uid)
        hung.append(Hung(rule.position, rule.label, best.uid if best else None, best is not None))
    left = [view for view in series if view.uid not in used]
    for entry in hung:
        if entry.series_uid is None and left:
            entry.series_uid = left.pop(0).uid
    return hung


def study_hanging(study: Study) -> dict:
    """What the viewer hangs on opening: the protocol, its layout and each viewport's series;
    ``protocol`` None when none fits (the viewer keeps its own first series in one viewport)."""
    series = series_views(study_ids=[study.pk])
    protocol = hanging_protocol_for(study, series)
    if protocol is None:
        return {"protocol": None, "layout": None, "viewports": []}
    return {
        "protocol": {"id": protocol.pk, "name": protocol.name},
        "layout": protocol.layout,
        "viewports": [entry.as_json() for entry in hanging_apply(protocol, series)],
    }
