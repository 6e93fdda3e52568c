"""Annotations: the marks and measurements vets draw in the viewer, saved on the server per study.

Each save is a new version (who, when, the Cornerstone3D annotations as they serialize and the
key images), older versions kept. Saves are optimistic: the caller names the version it edited,
and a save over a newer one is refused (409) naming who saved that, so two colleagues never
overwrite each other's work unseen. The viewer (viewer/src/annotations.js), the REST API
(integrations/api/annotations.py) and the export (sr.py) all go through here. Errors are
ValidationErrors keyed by the field, worded for whoever sent it.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils.timezone import now

from imaging.models import AnnotationSet, AnnotationVersion, Instance, Study
from imaging.orders.services import STATE
from patients.models import Patient
from patients.selectors import patient_resolve
from vetclinic.audit.services import Actor, audit_record

# A radiograph carries tens of marks; a few thousand (a CT with many slices) is plenty, and
# 2 MB of JSON keeps one save quick to write, read and diff.
SIZE_LIMIT = 2_000_000
ANNOTATIONS_LIMIT = 5_000
KEY_IMAGES_LIMIT = 1_000
# The wadors image id the viewer makes (viewer/src/main.js): the instance and frame it shows.
IMAGE_ID = re.compile(
    r"/studies/([0-9.]{1,64})/series/([0-9.]{1,64})/instances/([0-9.]{1,64})/frames/([0-9]{1,6})$"
)
UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# What a result may be measured in: UCUM codes (features.js lists them).
UNIT = re.compile(r"^[A-Za-z0-9\[\]{}'/.%^*-]{1,32}$")
HISTORY_KINDS = ("vhs", "vlas")


class StaleVersion(ValidationError):
    """A save of a version that is no longer the current one (the API answers 409)."""

    def __init__(self, current: AnnotationVersion) -> None:
        self.current = current
        message = (
            f"These annotations were saved again since: version {current.number} by "
            f"{current.saved_by_name or 'someone'} at {current.saved_at:%Y-%m-%d %H:%M}. "
            "Reload them and make your changes again."
        )
        super().__init__({"version": ValidationError(message, code=STATE)})


@dataclass(frozen=True)
class ImageRef:
    """An image of the study an annotation is on: its SOP Instance UID and frame (1-based)."""

    series_uid: str
    sop_instance_uid: str
    frame: int


def image_ref(image_id: str) -> ImageRef | None:
    """The instance and frame a wadors image id names (.../instances/{sop}/frames/{n})."""
    match = IMAGE_ID.search(image_id or "")
    if match is None or not 1 <= int(match.group(4)):
        return None
    return ImageRef(match.group(2), match.group(3), int(match.group(4)))


def vetpacs_result(annotation: dict[str, Any]) -> dict[str, Any]:
    """An annotation's human-readable result (features.js: data.vetpacs), or {}."""
    data = annotation.get("data")
    result = data.get("vetpacs") if isinstance(data, dict) else None
    return result if isinstance(result, dict) else {}


def _text(
    value: object, field: str, errors: dict[str, str], limit: int = 200, required: bool = False
) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        errors[field] = (
            f"A text of 1 to {limit} characters." if required else f"A text of at most {limit} characters."
        )


def _annotation_check(index: int, annotation: object, errors: dict[str, str]) -> ImageRef | None:
    at = f"annotations[{index}]"
    if not isinstance(annotation, dict):
        errors[at] = "Each annotation is an object (as Cornerstone3D serializes it)."
        return None
    _text(annotation.get("annotationUID"), f"{at}.annotationUID", errors, 100, required=True)
    metadata = annotation.get("metadata")
    if not isinstance(metadata, dict):
        errors[f"{at}.metadata"] = "An object with toolName and referencedImageId."
        return None
    _text(metadata.get("toolName"), f"{at}.metadata.toolName", errors, 100, required=True)
    ref = image_ref(metadata.get("referencedImageId") or "")
    if ref is None:
        errors[f"{at}.metadata.referencedImageId"] = (
            "The wadors image id of an image: …/instances/{uid}/frames/{n}."
        )
    if not isinstance(annotation.get("data"), dict):
        errors[f"{at}.data"] = "An object (the tool's handles and results)."
        return ref
    result = annotation["data"].get("vetpacs")
    if result is None:
        return ref
    if not isinstance(result, dict):
        errors[f"{at}.data.vetpacs"] = "An object: kind, label, value, unit, text, reference."
        return ref
    _text(result.get("kind"), f"{at}.data.vetpacs.kind", errors, 32, required=True)
    for name in ("label", "text", "reference"):
        _text(result.get(name), f"{at}.data.vetpacs.{name}", errors)
    value = result.get("value")
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or value != value
    ):
        errors[f"{at}.data.vetpacs.value"] = "A number, or null."
    unit = result.get("unit")
    if unit is not None and (not isinstance(unit, str) or not UNIT.match(unit)):
        errors[f"{at}.data.vetpacs.unit"] = "A UCUM unit code such as mm, deg, mm2 or {vertebrae}."
    if value is not None and not unit and f"{at}.data.vetpacs.value" not in errors:
        errors[f"{at}.data.vetpacs.unit"] = "A value needs its unit (UCUM)."
    return ref


def _key_image_check(index: int, item: object, errors: dict[str, str]) -> ImageRef | None:
    at = f"key_images[{index}]"
    if not isinstance(item, dict):
        errors[at] = "An object: seriesUid, sopInstanceUid, frame, imageId."
        return None
    for name in ("seriesUid", "sopInstanceUid"):
        value = item.get(name)
        if not isinstance(value, str) or len(value) > 64 or not UID.match(value):
            errors[f"{at}.{name}"] = "A DICOM UID."
    frame = item.get("frame", 1)
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 1:
        errors[f"{at}.frame"] = "A frame number from 1."
    _text(item.get("imageId"), f"{at}.imageId", errors, 1000)
    if any(key.startswith(at) for key in errors):
        return None
    return ImageRef(item["seriesUid"], item["sopInstanceUid"], frame)


def annotations_check(*, study: Study, annotations: object, key_images: object) -> list[ImageRef]:
    """Check what a save brings; raise a ValidationError naming each bad field. Every image it
    refers to must be one of this study's (another study's marks are saved with that study)."""
    errors: dict[str, str] = {}
    refs: list[ImageRef] = []
    if not isinstance(annotations, list):
        errors["annotations"] = "A list of Cornerstone3D annotations."
    elif len(annotations) > ANNOTATIONS_LIMIT:
        errors["annotations"] = f"At most {ANNOTATIONS_LIMIT:,} annotations (this has {len(annotations):,})."
    else:
        refs += [ref for i, a in enumerate(annotations) if (ref := _annotation_check(i, a, errors))]
    if not isinstance(key_images, list):
        errors["key_images"] = "A list of images: seriesUid, sopInstanceUid, frame, imageId."
    elif len(key_images) > KEY_IMAGES_LIMIT:
        errors["key_images"] = f"At most {KEY_IMAGES_LIMIT:,} key images."
    else:
        refs += [ref for i, k in enumerate(key_images) if (ref := _key_image_check(i, k, errors))]
    if not errors:
        size = len(json.dumps([annotations, key_images], separators=(",", ":")))
        if size > SIZE_LIMIT:
            errors["annotations"] = f"At most {SIZE_LIMIT:,} bytes of JSON (this is {size:,})."
    if not errors:
        known = set(
            Instance.objects.filter(
                series__study=study, sop_instance_uid__in={ref.sop_instance_uid for ref in refs}
            ).values_list("sop_instance_uid", flat=True)
        )
        for name, items in (("annotations", annotations), ("key_images", key_images)):
            assert isinstance(items, list)
            for index, item in enumerate(items):
                ref = _ref_of(name, item)
                if ref is not None and ref.sop_instance_uid not in known:
                    errors[f"{name}[{index}]"] = f"Image {ref.sop_instance_uid} is not one of this study's."
    if errors:
        raise ValidationError(errors)
    return refs


def _ref_of(name: str, item: dict[str, Any]) -> ImageRef | None:
    """The image a checked annotation or key image names (a key image may carry any other keys,
    "metadata" among them: it is read as a key image)."""
    if name == "annotations":
        return image_ref(item["metadata"].get("referencedImageId") or "")
    return ImageRef(item["seriesUid"], item["sopInstanceUid"], item.get("frame", 1))


def annotations_current(*, study: Study) -> AnnotationVersion | None:
    """The study's current annotations (its newest version), or None before the first save."""
    return (
        AnnotationVersion.objects.filter(annotation_set__study=study)
        .select_related("annotation_set")
        .order_by("-number")
        .first()
    )


def annotation_versions(*, study: Study) -> QuerySet[AnnotationVersion]:
    """Every saved version, newest first."""
    return AnnotationVersion.objects.filter(annotation_set__study=study).order_by("-number")


def _saver(actor: Actor) -> tuple[User | None, str]:
    user = actor.user if isinstance(actor.user, User) and actor.user.pk else None
    name = (user.get_full_name() or user.get_username()) if user else actor.name
    return user, name[:200]


def _locked_set(study: Study) -> AnnotationSet:
    AnnotationSet.objects.get_or_create(study=study)
    return AnnotationSet.objects.select_for_update().get(study=study)


@transaction.atomic
def annotation_save(
    *, actor: Actor, study: Study, version: object, annotations: object, key_images: object
) -> AnnotationVersion:
    """Save the study's annotations as a new version, replacing ``version`` (the one the caller
    edited; 0 before the first). Raises StaleVersion when another save came first. The same
    content as the current version saves nothing (and logs nothing)."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValidationError({"version": "The version you edited: a number from 0 (none saved yet)."})
    annotations_check(study=study, annotations=annotations, key_images=key_images)
    assert isinstance(annotations, list) and isinstance(key_images, list)
    annotation_set = _locked_set(study)
    current = annotation_set.versions.order_by("-number").first()
    if version != annotation_set.version:
        if current is None:  # a version named that was never saved
            raise ValidationError({"version": "No annotations were saved on this study yet: send version 0."})
        raise StaleVersion(current)
    if current is not None and current.annotations == annotations and current.key_images == key_images:
        return current
    user, name = _saver(actor)
    saved = AnnotationVersion.objects.create(
        annotation_set=annotation_set, number=version + 1, saved_by=user, saved_by_name=name,
        annotations=annotations, key_images=key_images, authors=_authors(current, annotations, name),
    )  # fmt: skip
    annotation_set.version, annotation_set.updated = saved.number, saved.saved_at
    annotation_set.save(update_fields=["version", "updated"])
    # The log keeps counts; the versions themselves are the record of what was drawn.
    audit_record(
        actor=actor, instance=annotation_set, action="create" if version == 0 else "update",
        changes={
            "version": [version or None, saved.number],
            "annotations": [len(current.annotations) if current else None, len(annotations)],
            "key_images": [len(current.key_images) if current else None, len(key_images)],
        },
    )  # fmt: skip
    return saved


def _authors(current: AnnotationVersion | None, annotations: list[Any], name: str) -> dict[str, str]:
    """Who drew each annotation: its author in the version before when it is unchanged, else
    whoever saves now."""
    before = {a.get("annotationUID"): a for a in current.annotations} if current else {}
    kept = current.authors if current else {}
    authors = {}
    for annotation in annotations:
        uid = annotation["annotationUID"]
        authors[uid] = kept.get(uid, name) if before.get(uid) == annotation else name
    return authors


def key_image_set(
    *, actor: Actor, study: Study, version: int, key_image: dict[str, Any], flagged: bool
) -> AnnotationVersion:
    """Flag an image of the study as a key image, or unflag it: a new version like any save."""
    current = annotations_current(study=study)
    annotations = current.annotations if current else []
    keys = [k for k in (current.key_images if current else []) if not _same_image(k, key_image)]
    if flagged:
        keys.append(key_image)
    return annotation_save(
        actor=actor, study=study, version=version, annotations=annotations, key_images=keys
    )


def _same_image(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a.get("sopInstanceUid") == b.get("sopInstanceUid") and a.get("frame", 1) == b.get("frame", 1))


@dataclass(frozen=True)
class PastValue:
    """A VHS or VLAS measured on one of the animal's studies."""

    study_id: int
    study_date: date | None
    kind: str
    label: str
    value: float
    unit: str
    text: str
    version: int
    this_study: bool


def animal_patient_ids(patient: Patient) -> set[int]:
    """The animal's living record and every record merged into it (its aliases, patients/
    services.py patient_merge): studies may still point at an alias."""
    root = patient_resolve(patient)
    ids, frontier = {root.pk}, {root.pk}
    while frontier:
        frontier = set(Patient.objects.filter(merged_into__in=frontier).values_list("pk", flat=True)) - ids
        ids |= frontier
    return ids


def measurement_history(*, study: Study, kinds: Iterable[str] = HISTORY_KINDS) -> list[PastValue]:
    """The animal's VHS and VLAS values from the current annotations of each of its studies,
    oldest first, this study's among them. Found by the study's linked patient record (and its
    merged aliases), never by the DICOM Patient ID: two animals may share one, a clinic's
    numbering may restart, and an unlinked study is not known to be this animal's."""
    if study.patient is None:
        return []
    wanted = set(kinds)
    ids = animal_patient_ids(study.patient)
    versions = (
        AnnotationVersion.objects.filter(annotation_set__study__patient_id__in=ids)
        .select_related("annotation_set__study")
        .order_by("annotation_set_id", "-number")
        .distinct("annotation_set_id")  # each study's newest (PostgreSQL DISTINCT ON)
    )
    values: list[PastValue] = []
    for saved in versions:
        other = saved.annotation_set.study
        for annotation in saved.annotations:
            result = vetpacs_result(annotation)
            if result.get("kind") in wanted and isinstance(result.get("value"), (int, float)):
                values.append(PastValue(
                    study_id=other.pk, study_date=other.study_date, kind=result["kind"],
                    label=result.get("label") or result["kind"].upper(), value=float(result["value"]),
                    unit=result.get("unit") or "", text=result.get("text") or "", version=saved.number,
                    this_study=other.pk == study.pk,
                ))  # fmt: skip
    return sorted(values, key=lambda v: (v.study_date or date.min, v.study_id, v.kind))


def export_mark(*, saved: AnnotationVersion, sr_uid: str, ko_uid: str) -> None:
    """Record that ``saved`` went into the study as these DICOM objects (sr.py)."""
    saved.sr_sop_instance_uid, saved.ko_sop_instance_uid, saved.exported_at = sr_uid, ko_uid, now()
    saved.save(update_fields=["sr_sop_instance_uid", "ko_sop_instance_uid", "exported_at"])
