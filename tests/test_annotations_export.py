"""The annotations exported into the study (imaging/annotations/sr.py): a TID 1500 measurement
SR and a key object selection, built with highdicom, read back with pydicom, stored and indexed
through the C-STORE path's receive and ingest, and then found by QIDO-RS and WADO-RS."""

import io

import pydicom
import pytest
from pydicom.uid import generate_uid

from imaging.annotations.services import annotation_save
from imaging.annotations.sr import annotations_export
from imaging.ingest import storage
from imaging.ingest.tasks import instances_ingest
from imaging.models import Instance, Study
from tests.test_annotations import image_id, mark
from tests.test_browser_viewer import ct_slice
from tests.test_dicomweb_wado import Collected, ingest, key, uids, web  # noqa: F401  (fixtures)
from vetclinic.audit.models import AuditEntry
from vetclinic.audit.services import Actor

pytestmark = pytest.mark.django_db(transaction=True)

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"


def content_items(ds):
    """Every content item of an SR's tree, depth first."""
    for item in ds.get("ContentSequence", []):
        yield item
        yield from content_items(item)


def exported(messages):
    """Index what the export queued (as the worker's task does) and read each object back."""
    instances_ingest(messages)
    return {
        message["summary"]["sop_class_uid"]: pydicom.dcmread(
            io.BytesIO(storage.object_get(message["storage_key"]))
        )
        for message in messages
    }


@pytest.fixture
def study(reference_data, ingest):  # noqa: F811
    study_uid, series_uid = generate_uid(), generate_uid()
    ds, changes = ct_slice(study_uid, series_uid, 0)
    (image,) = ingest((ds, {**changes, "PatientName": "Smith^Bella", "PatientID": "P-100"}))
    return Study.objects.get(study_instance_uid=study_uid), series_uid, image.sop_instance_uid


def test_the_export_is_a_tid_1500_sr_with_the_value_and_unit_on_the_image_and_a_key_object(
    study, staff, make_patient, make_owner
):
    study, series_uid, sop = study
    # Linked to the animal's record: the objects carry its attributes, as a linked study's images do.
    bella = make_patient("Bella", owner=make_owner("Smith"), patient_id="P-100")
    Study.objects.filter(pk=study.pk).update(patient=bella)
    study.refresh_from_db()
    vet = Actor.for_user(staff["veterinarian"])
    key_image = {
        "seriesUid": series_uid,
        "sopInstanceUid": sop,
        "frame": 1,
        "imageId": image_id(study, series_uid, sop),
    }
    annotation_save(
        actor=vet, study=study, version=0, key_images=[key_image],
        annotations=[mark(study, series_uid, sop, value=42.5, unit="mm", text="Length 42.5 mm"),
                     mark(study, series_uid, sop, kind="vhs", value=10.4, unit="{vertebrae}", text="VHS 10.4 v"),
                     mark(study, series_uid, sop, kind="arrow", value=None, unit=None)],
    )  # fmt: skip
    batch = Collected()
    export = annotations_export(actor=vet, study=study, batch=batch)
    objects = exported(batch.messages)
    sr, ko = objects[COMPREHENSIVE_3D_SR], objects[KEY_OBJECT_SELECTION]

    assert sr.SOPInstanceUID == export.sr_sop_instance_uid and sr.Modality == "SR"
    assert sr.StudyInstanceUID == study.study_instance_uid and sr.PatientID == "P-100"
    assert (str(sr.PatientName), sr.PatientSpeciesDescription, sr.ResponsiblePersonRole) == (
        "Smith^Bella",
        bella.species.meaning,
        "OWNER",
    )
    assert ko.PatientSpeciesDescription == bella.species.meaning
    assert sr.SeriesInstanceUID not in (series_uid, ko.SeriesInstanceUID)
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert sr.ConceptNameCodeSequence[0].CodeValue == "126000"  # Imaging Measurement Report
    numbers = [item for item in content_items(sr) if item.ValueType == "NUM"]
    values = [
        (item.ConceptNameCodeSequence[0].CodeMeaning, float(item.MeasuredValueSequence[0].NumericValue),
         item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue,
         item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodingSchemeDesignator)
        for item in numbers
    ]  # fmt: skip
    assert values == [("Length", 42.5, "mm", "UCUM"), ("VHS", 10.4, "{vertebrae}", "UCUM")]
    references = [
        item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for number in numbers for item in content_items(number) if item.ValueType == "IMAGE"
    ]  # fmt: skip
    assert references == [sop, sop]
    assert sr.CurrentRequestedProcedureEvidenceSequence[0].StudyInstanceUID == study.study_instance_uid
    observer = [item for item in content_items(sr) if item.get("ValueType") == "PNAME"]
    assert (
        str(observer[0].PersonName) == "^Veterinarian"
    )  # the account's given name (fixture: no family name)

    assert ko.Modality == "KO" and ko.StudyInstanceUID == study.study_instance_uid
    assert ko.ConceptNameCodeSequence[0].CodeValue == "113000"  # Of Interest (CID 7010)
    assert [item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for item in content_items(ko)
            if item.ValueType == "IMAGE"] == [sop]  # fmt: skip

    indexed = Instance.objects.filter(series__study=study).values_list("sop_instance_uid", "series__modality")
    assert set(indexed) == {(sop, "CT"), (sr.SOPInstanceUID, "SR"), (ko.SOPInstanceUID, "KO")}
    assert AuditEntry.objects.filter(action="export", object_type__model="annotationset").count() == 1


def test_the_sr_is_found_by_qido_and_retrieved_by_wado_in_the_study(study, staff, web):  # noqa: F811
    study, series_uid, sop = study
    vet = Actor.for_user(staff["veterinarian"])
    annotation_save(actor=vet, study=study, version=0, key_images=[],
                    annotations=[mark(study, series_uid, sop, value=17.25)])  # fmt: skip
    batch = Collected()
    export = annotations_export(actor=vet, study=study, batch=batch)
    instances_ingest(batch.messages)
    found = web.search_for_series(study.study_instance_uid, search_filters={"Modality": "SR"})
    assert [s["0020000E"]["Value"][0] for s in found] == [export.sr_series_uid]
    retrieved = web.retrieve_instance(
        study.study_instance_uid, export.sr_series_uid, export.sr_sop_instance_uid
    )
    numbers = [item for item in content_items(retrieved) if item.ValueType == "NUM"]
    assert float(numbers[0].MeasuredValueSequence[0].NumericValue) == 17.25


def test_a_version_is_exported_once_and_a_newer_one_adds_an_sr_naming_its_predecessor(study, staff):
    study, series_uid, sop = study
    vet = Actor.for_user(staff["veterinarian"])
    annotation_save(actor=vet, study=study, version=0, annotations=[mark(study, series_uid, sop, value=10)],
                    key_images=[])  # fmt: skip
    batch = Collected()
    first = annotations_export(actor=vet, study=study, batch=batch)
    instances_ingest(batch.messages)
    again = annotations_export(actor=vet, study=study, batch=batch)
    assert (again.sr_sop_instance_uid, again.messages) == (first.sr_sop_instance_uid, [])
    annotation_save(actor=vet, study=study, version=1, annotations=[mark(study, series_uid, sop, value=11)],
                    key_images=[])  # fmt: skip
    batch = Collected()
    second = annotations_export(actor=vet, study=study, batch=batch)
    sr = exported(batch.messages)[COMPREHENSIVE_3D_SR]
    assert second.sr_series_uid == first.sr_series_uid and sr.InstanceNumber == 2
    assert sr.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0] \
        .ReferencedSOPInstanceUID == first.sr_sop_instance_uid  # fmt: skip
    assert Instance.objects.filter(series__series_instance_uid=first.sr_series_uid).count() == 2
