"""Annotations (imaging/annotations/services.py): saved per study as versions, optimistic saves
(a stale one refused naming the newer version), audited, bad JSON refused naming the field, and
the VHS/VLAS history found by the animal's linked record and its merged aliases only."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from pydicom.uid import generate_uid

from imaging.annotations import services
from imaging.annotations.services import (
    StaleVersion,
    annotation_save,
    annotations_current,
    measurement_history,
)
from imaging.models import AnnotationSet, AnnotationVersion, Instance, Series, Study
from patients.services import patient_merge
from vetclinic.audit.models import AuditEntry
from vetclinic.audit.services import Actor

pytestmark = pytest.mark.django_db


def study_with_image(patient=None, study_date=date(2026, 11, 2), dicom_patient_id=""):
    """A study row with one indexed image (the index's rows; no file is needed to save marks)."""
    study = Study.objects.create(
        study_instance_uid=generate_uid(),
        patient=patient,
        study_date=study_date,
        dicom_patient_id=dicom_patient_id,
    )
    series = Series.objects.create(study=study, series_instance_uid=generate_uid(), modality="DX")
    sop = generate_uid()
    Instance.objects.create(
        series=series, sop_instance_uid=sop, sop_class_uid="1.2.840.10008.5.1.4.1.1.1.1",
        transfer_syntax_uid="1.2.840.10008.1.2.1", file_size=1, storage_key=f"test/{sop}",
    )  # fmt: skip
    return study, series.series_instance_uid, sop


def image_id(study, series_uid, sop, frame=1):
    return (f"wadors:/dicomweb/studies/{study.study_instance_uid}/series/{series_uid}"
            f"/instances/{sop}/frames/{frame}")  # fmt: skip


def mark(study, series_uid, sop, kind="length", value=42.5, unit="mm", text=None, uid=None):
    """An annotation as Cornerstone3D serializes it, with its result in data.vetpacs."""
    return {
        "annotationUID": uid or generate_uid(prefix=None)[:36],
        "highlighted": False,
        "metadata": {"toolName": "Length", "referencedImageId": image_id(study, series_uid, sop)},
        "data": {
            "handles": {"points": [[0, 0, 0], [10, 0, 0]]},
            "vetpacs": {"kind": kind, "label": kind.upper(), "value": value, "unit": unit,
                        "text": text or f"{kind} {value} {unit}", "reference": ""},
        },
    }  # fmt: skip


@pytest.fixture
def vet(staff):
    return Actor.for_user(staff["veterinarian"])


def test_each_save_is_a_new_version_and_the_older_ones_are_kept(staff, vet):
    study, series_uid, sop = study_with_image()
    length = mark(study, series_uid, sop)
    first = annotation_save(actor=vet, study=study, version=0, annotations=[length], key_images=[])
    key = {
        "seriesUid": series_uid,
        "sopInstanceUid": sop,
        "frame": 1,
        "imageId": image_id(study, series_uid, sop),
    }
    second = annotation_save(
        actor=Actor.for_user(staff["radiologist"]), study=study, version=1,
        annotations=[length, mark(study, series_uid, sop, value=12.0)], key_images=[key],
    )  # fmt: skip
    assert (first.number, second.number) == (1, 2)
    assert (first.saved_by_name, second.saved_by_name) == ("Veterinarian", "Radiologist")
    assert annotations_current(study=study).pk == second.pk
    assert annotations_current(study=study).key_images == [key]
    assert list(AnnotationVersion.objects.filter(annotation_set__study=study).values_list("number", flat=True)) == [
        2, 1
    ]  # fmt: skip
    assert len(AnnotationVersion.objects.get(number=1, annotation_set__study=study).annotations) == 1
    assert AnnotationSet.objects.get(study=study).version == 2
    # The first mark is unchanged: still the vet's; the new one is the radiologist's.
    assert second.authors == {
        second.annotations[0]["annotationUID"]: "Veterinarian",
        second.annotations[1]["annotationUID"]: "Radiologist",
    }


def test_a_save_of_an_older_version_is_refused_naming_the_newer_one_and_changes_nothing(staff, vet):
    study, series_uid, sop = study_with_image()
    annotation_save(
        actor=vet, study=study, version=0, annotations=[mark(study, series_uid, sop)], key_images=[]
    )
    radiologist = Actor.for_user(staff["radiologist"])
    annotation_save(actor=radiologist, study=study, version=1, annotations=[], key_images=[])
    with pytest.raises(StaleVersion) as refused:
        annotation_save(
            actor=vet, study=study, version=1, annotations=[mark(study, series_uid, sop)], key_images=[]
        )
    message = refused.value.message_dict["version"][0]
    assert "version 2 by Radiologist" in message
    assert refused.value.current.number == 2
    assert annotations_current(study=study).annotations == []
    assert AnnotationVersion.objects.filter(annotation_set__study=study).count() == 2


def test_saves_are_audited_with_the_versions_and_a_save_that_changes_nothing_writes_nothing(vet):
    study, series_uid, sop = study_with_image()
    marks = [mark(study, series_uid, sop)]
    annotation_save(actor=vet, study=study, version=0, annotations=marks, key_images=[])
    annotation_save(
        actor=vet, study=study, version=1, annotations=marks + [mark(study, series_uid, sop)], key_images=[]
    )
    again = annotation_save(
        actor=vet, study=study, version=2, annotations=marks + [annotations_current(study=study).annotations[1]],
        key_images=[],
    )  # fmt: skip
    assert again.number == 2
    entries = AuditEntry.objects.filter(
        object_id=str(study.annotation_set.pk), object_type__model="annotationset"
    )
    assert [(e.action, e.changes, e.user.username) for e in entries.order_by("id")] == [
        ("create", {"version": [None, 1], "annotations": [None, 1], "key_images": [None, 0]}, "veterinarian"),
        ("update", {"version": [1, 2], "annotations": [1, 2], "key_images": [0, 0]}, "veterinarian"),
    ]


@pytest.mark.parametrize(
    ("annotations", "key_images", "field"),
    [
        ({"not": "a list"}, [], "annotations"),
        (["text"], [], "annotations[0]"),
        ([{"annotationUID": "a", "metadata": {"toolName": "Length", "referencedImageId": "http://x/y"},
           "data": {}}], [], "annotations[0].metadata.referencedImageId"),
        ("GOOD", [], "annotations[0].data.vetpacs.value"),
        ("GOOD_UNIT", [], "annotations[0].data.vetpacs.unit"),
        ([], [{"seriesUid": "1.2", "sopInstanceUid": "x-y", "frame": 1}], "key_images[0].sopInstanceUid"),
        ([], [{"seriesUid": "1.2", "sopInstanceUid": "1.2.3", "frame": 0}], "key_images[0].frame"),
        ([], [{"seriesUid": "1.2", "sopInstanceUid": "1.2.3", "frame": 1}], "key_images[0]"),  # not this study's
        ("HUGE", [], "annotations"),
    ],
)  # fmt: skip
def test_bad_json_is_refused_naming_the_field(vet, annotations, key_images, field, monkeypatch):
    study, series_uid, sop = study_with_image()
    if annotations == "GOOD":
        annotations = [mark(study, series_uid, sop, value="forty")]
    elif annotations == "GOOD_UNIT":
        annotations = [mark(study, series_uid, sop, unit="milli metres")]
    elif annotations == "HUGE":
        monkeypatch.setattr(services, "SIZE_LIMIT", 1000)
        annotations = [mark(study, series_uid, sop, text="x" * 150) for _ in range(10)]
    with pytest.raises(ValidationError) as refused:
        annotation_save(actor=vet, study=study, version=0, annotations=annotations, key_images=key_images)
    assert field in refused.value.message_dict, refused.value.message_dict
    assert not AnnotationVersion.objects.exists()
    assert not AuditEntry.objects.filter(object_type__model="annotationset").exists()


def test_a_mark_on_another_studys_image_is_refused(vet):
    study, _, _ = study_with_image()
    other, other_series, other_sop = study_with_image()
    with pytest.raises(ValidationError) as refused:
        annotation_save(actor=vet, study=study, version=0, annotations=[mark(other, other_series, other_sop)],
                        key_images=[])  # fmt: skip
    assert "not one of this study's" in refused.value.message_dict["annotations[0]"][0]


def save_vhs(actor, study, series_uid, sop, vhs, vlas=None):
    marks = [mark(study, series_uid, sop, kind="vhs", value=vhs, unit="{vertebrae}", text=f"VHS {vhs} v")]
    if vlas is not None:
        marks.append(mark(study, series_uid, sop, kind="vlas", value=vlas, unit="{vertebrae}"))
    marks.append(mark(study, series_uid, sop))  # a length: not part of the history
    return annotation_save(actor=actor, study=study, version=0, annotations=marks, key_images=[])


def test_vhs_history_comes_from_the_linked_record_and_its_merged_alias_not_the_patient_id(
    vet, actor, make_patient
):
    bella = make_patient("Bella", patient_id="P-100")
    bella_old = make_patient("Bella", patient_id="P-077")  # registered twice, then merged
    stranger = make_patient("Rex", patient_id="P-200")
    first, s1, i1 = study_with_image(bella_old, date(2025, 3, 1))
    save_vhs(vet, first, s1, i1, 9.8)
    patient_merge(actor=actor, source=bella_old, target=bella)
    # A study left on the alias (as one linked before the merge moved its studies would be).
    on_alias, s2, i2 = study_with_image(None, date(2025, 9, 1))
    Study.objects.filter(pk=on_alias.pk).update(patient=bella_old)
    save_vhs(vet, on_alias, s2, i2, 10.1, vlas=2.1)
    # Bella's Patient ID on another animal's study, and on an unlinked one: never hers.
    same_id, s3, i3 = study_with_image(stranger, date(2025, 10, 1), dicom_patient_id="P-100")
    save_vhs(vet, same_id, s3, i3, 12.0)
    unlinked, s4, i4 = study_with_image(None, date(2025, 11, 1), dicom_patient_id="P-100")
    save_vhs(vet, unlinked, s4, i4, 13.0)
    current, s5, i5 = study_with_image(bella, date(2026, 11, 2), dicom_patient_id="P-100")
    save_vhs(vet, current, s5, i5, 10.6, vlas=2.4)
    history = measurement_history(study=current)
    assert [(v.study_date, v.kind, v.value, v.this_study) for v in history] == [
        (date(2025, 3, 1), "vhs", 9.8, False),
        (date(2025, 9, 1), "vhs", 10.1, False),
        (date(2025, 9, 1), "vlas", 2.1, False),
        (date(2026, 11, 2), "vhs", 10.6, True),
        (date(2026, 11, 2), "vlas", 2.4, True),
    ]
    assert history[0].text == "VHS 9.8 v" and history[0].unit == "{vertebrae}"
    assert measurement_history(study=unlinked) == []  # no record, no history (not by its Patient ID)


def test_the_history_takes_each_studys_current_version_only(vet, make_patient):
    study, series_uid, sop = study_with_image(make_patient("Bella"))
    saved = save_vhs(vet, study, series_uid, sop, 9.5)
    annotation_save(actor=vet, study=study, version=saved.number,
                    annotations=[mark(study, series_uid, sop, kind="vhs", value=9.9, unit="{vertebrae}")],
                    key_images=[])  # fmt: skip
    assert [(v.value, v.version) for v in measurement_history(study=study)] == [(9.9, 2)]
