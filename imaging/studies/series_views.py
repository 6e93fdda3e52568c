"""What a series shows, as hanging protocols and the comparison with a prior need it: its body
part, its view (a right lateral, a VD…) and the words that describe it.

The view is read from the first image's kept metadata (imaging/archive/metadata.py), so a study
of any size costs two queries: View Position (0018,5101; DX Positioning, PS3.3 C.8.11.5: AP, PA,
LL, RL, RLD, LLD, RLO, LLO), Image Laterality (0020,0062) or Laterality (0020,0060), and the
Code Meaning of View Code Sequence (0054,0220). Veterinary consoles often leave these empty or
put VD/DV in View Position, and name the view in the series description ("Thorax R lat"), so the
description, Protocol Name (0018,1030) and Acquisition Device Processing Description
(0018,1400) are searched too."""

import re
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from django.db.models import Count, OuterRef, Subquery

from imaging.models import Instance, InstanceMetadata, Series

VIEW_POSITION = "00185101"
LATERALITY = ("00200062", "00200060")  # Image Laterality first, then the series' Laterality
VIEW_CODE_SEQUENCE = "00540220"
CODE_MEANING = "00080104"
DESCRIBING = ("00181030", "00181400")  # Protocol Name, Acquisition Device Processing Description

# Views by name: the View Position values that mean each, and the words that name it in a
# description. Specific before generic: "right lateral" is tried before "lateral".
VIEWS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("right lateral", ("RL", "RLD"), ("right lateral", "right lat", "r lat", "rt lat", "rlat", "rl")),
    ("left lateral", ("LL", "LLD"), ("left lateral", "left lat", "l lat", "lt lat", "llat", "ll")),
    ("ventrodorsal", ("VD",), ("ventrodorsal", "ventro dorsal", "vd")),
    ("dorsoventral", ("DV",), ("dorsoventral", "dorso ventral", "dv")),
    ("craniocaudal", (), ("craniocaudal", "cranio caudal", "crcd", "cr cd")),
    ("caudocranial", (), ("caudocranial", "caudo cranial", "cdcr", "cd cr")),
    ("mediolateral", (), ("mediolateral", "medio lateral", "ml")),
    ("dorsopalmar", (), ("dorsopalmar", "dorso palmar", "dp")),
    ("AP", ("AP",), ("ap",)),
    ("PA", ("PA",), ("pa",)),
    ("lateral", (), ("lateral", "lat")),
]


def normalized(text: str) -> str:
    """Lower case, with separators (- _ ^ / .) as spaces and runs of spaces as one: "Ventro-dorsal"
    and "ventro dorsal" read alike."""
    return " ".join(re.sub(r"[-_^/.,;:()]+", " ", text.lower()).split())


def phrase_in(phrase: str, text: str) -> bool:
    """Whether the phrase is in the (normalized) text as whole words: "VD" is not in "VDX"."""
    words = normalized(phrase)
    return bool(words) and re.search(rf"(?<![a-z0-9]){re.escape(words)}(?![a-z0-9])", text) is not None


@dataclass
class SeriesView:
    pk: int
    study_id: int
    uid: str
    number: int | None
    modality: str
    body_part: str
    description: str
    images: int
    view_position: str = ""
    laterality: str = ""
    text: str = ""  # everything that describes it, normalized (description, view code, protocol…)

    @property
    def view(self) -> str:
        """The view's name (VIEWS), by View Position first, else by the words that describe it."""
        for name, positions, _ in VIEWS:
            if self.view_position and self.view_position in positions:
                return name
        for name, _, words in VIEWS:
            if any(phrase_in(word, self.text) for word in words):
                return name
        return ""

    def as_json(self) -> dict:
        return {
            "uid": self.uid, "number": self.number, "modality": self.modality, "body_part": self.body_part,
            "description": self.description, "view_position": self.view_position, "view": self.view,
            "images": self.images,
        }  # fmt: skip


def _value(document: dict, tag: str) -> str:
    element = document.get(tag) or {}
    values = element.get("Value") or []
    return str(values[0]).strip() if values and not isinstance(values[0], dict) else ""


def _view_code_meanings(document: dict) -> list[str]:
    items = (document.get(VIEW_CODE_SEQUENCE) or {}).get("Value") or []
    return [_value(item, CODE_MEANING) for item in items if isinstance(item, dict)]


def series_views(*, study_ids: Iterable[int]) -> list[SeriesView]:
    """The series of the studies given (with images), in series-number order, each with its view
    read from its first image's metadata: two queries whatever the studies."""
    first_image = (
        Instance.objects.filter(series=OuterRef("pk")).order_by("instance_number", "id").values("pk")[:1]
    )
    rows = list(
        Series.objects.filter(study_id__in=list(study_ids))
        .annotate(images=Count("instances"), first_image=Subquery(first_image))
        .filter(images__gt=0)
        .order_by("study_id", "series_number", "id")
    )
    documents = {
        row.instance_id: row.document
        for row in InstanceMetadata.objects.filter(instance_id__in=[r.first_image for r in rows])
    }
    views = []
    for row in rows:
        document = orjson.loads(documents[row.first_image]) if row.first_image in documents else {}
        position = _value(document, VIEW_POSITION).upper()
        laterality = next((v for v in (_value(document, tag) for tag in LATERALITY) if v), "").upper()
        words = [row.description, position, *_view_code_meanings(document)]
        words += [_value(document, tag) for tag in DESCRIBING]
        views.append(SeriesView(
            pk=row.pk, study_id=row.study_id, uid=row.series_instance_uid, number=row.series_number,
            modality=row.modality.upper(), body_part=row.body_part.upper(), description=row.description,
            images=row.images, view_position=position, laterality=laterality,
            text=normalized(" ".join(w for w in words if w)),
        ))  # fmt: skip
    return views


def series_likeness(current: SeriesView, other: SeriesView) -> int:
    """How alike two series are for comparing one with the other: the same view counts most
    (a right lateral beside the prior's right lateral), then the body part, the description,
    the laterality (a left stifle with the left stifle) and the modality."""
    score = 0
    if current.view and current.view == other.view:
        score += 8
    if current.body_part and current.body_part == other.body_part:
        score += 4
    if current.description and normalized(current.description) == normalized(other.description):
        score += 3
    if current.laterality and current.laterality == other.laterality:
        score += 2
    if current.modality == other.modality:
        score += 1
    return score


def series_best_match(current: SeriesView, candidates: list[SeriesView]) -> SeriesView | None:
    """The candidate most like ``current`` (series_likeness), the first in series order on a tie."""
    best = None
    for candidate in candidates:
        if best is None or series_likeness(current, candidate) > series_likeness(current, best):
            best = candidate
    return best
