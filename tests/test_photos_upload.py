"""The photo upload's page and REST endpoint (importing/photo_views.py): per-file results,
clear errors naming the field, permissions and scopes, the endpoint in the OpenAPI schema."""

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from integrations.api.clients import api_client_create
from tests.test_photos import MP4, jpeg

TEXT = b"Not a photo at all, just notes.\n"


def stored_objects(storage_root):
    """The objects kept in storage, read back."""
    return [pydicom.dcmread(path) for path in storage_root.rglob("*") if path.is_file()]


@pytest.fixture
def animal(reference_data, make_patient, make_owner):
    return make_patient(name="Pepper", owner=make_owner("Hartley"))


def test_the_page_stores_the_good_files_and_names_the_bad_one(
    client, animal, staff, make_order, storage_root
):
    order = make_order(animal)
    client.force_login(staff["veterinarian"])
    page = client.get(reverse("patient_detail", args=[animal.pk]))
    assert reverse("photo_upload", args=[animal.pk]) in page.content.decode()  # the button
    answer = client.post(
        reverse("photo_upload", args=[animal.pk]),
        {
            "files": [
                SimpleUploadedFile("ear.jpg", jpeg()),
                SimpleUploadedFile("notes.jpg", TEXT),
                SimpleUploadedFile("scope.mp4", MP4),
            ],
            "kind": "photo",
            "order": str(order.pk),
        },
    )
    text = answer.content.decode()
    assert answer.status_code == 200
    assert "2 files stored" in text and "1 file not stored" in text
    assert "notes.jpg</span>: not a JPEG, PNG, HEIC or MP4 file" in text
    objects = stored_objects(storage_root)
    assert sorted(ds.SOPClassUID.name for ds in objects) == [
        "VL Photographic Image Storage",
        "Video Photographic Image Storage",
    ]
    # The still and the video: a series each (one Series Number per series).
    assert len({ds.SeriesInstanceUID for ds in objects}) == 2
    assert sorted(int(ds.SeriesNumber) for ds in objects) == [900, 901]
    assert {(ds.PatientID, ds.AccessionNumber, ds.StudyInstanceUID) for ds in objects} == {
        (animal.patient_id, order.accession_number, order.study_instance_uid)
    }


def test_the_page_refuses_another_animals_order_and_endoscopy_without_region(
    client, animal, staff, make_patient, make_order, storage_root
):
    other = make_order(make_patient(name="Rex"))
    client.force_login(staff["front desk"])
    url = reverse("photo_upload", args=[animal.pk])
    answer = client.post(url, {"files": [SimpleUploadedFile("a.jpg", jpeg())], "order": str(other.pk)})
    assert answer.status_code == 400 and "Order: not one of this animal&#x27;s" in answer.content.decode()
    answer = client.post(url, {"files": [SimpleUploadedFile("a.jpg", jpeg())], "kind": "endoscopy"})
    assert answer.status_code == 400 and "Region: choose the region examined" in answer.content.decode()
    assert stored_objects(storage_root) == []


def test_staff_without_a_role_may_not_upload(client, django_user_model, animal, storage_root):
    client.force_login(django_user_model.objects.create_user("nobody", password="x"))
    answer = client.post(
        reverse("photo_upload", args=[animal.pk]), {"files": [SimpleUploadedFile("a.jpg", jpeg())]}
    )
    assert answer.status_code == 403 and stored_objects(storage_root) == []


def api_key(actor, *scopes):
    return api_client_create(actor=actor, name=f"PMS {' '.join(scopes)}", scopes=list(scopes))[1]


def test_the_api_stores_with_the_studies_write_scope(client, actor, animal, storage_root):
    url = reverse("api_patient_photos", args=[animal.pk])
    key = api_key(actor, "studies:write")
    answer = client.post(
        url,
        {"files": [SimpleUploadedFile("a.jpg", jpeg()), SimpleUploadedFile("b.txt", TEXT)]},
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert answer.status_code == 202
    good, bad = answer.json()["results"]
    assert good["filename"] == "a.jpg" and good["transfer_syntax"] == "1.2.840.10008.1.2.4.50"
    assert bad["filename"] == "b.txt" and "not a JPEG" in bad["error"] and "sop_instance_uid" not in bad
    (ds,) = stored_objects(storage_root)
    assert ds.SOPInstanceUID == good["sop_instance_uid"] and ds.PatientID == animal.patient_id


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "files"),
        ({"files": [SimpleUploadedFile("b.jpg", TEXT)]}, "files"),
        ({"order": "999999"}, "order"),
    ],
)
def test_the_api_names_the_field_of_a_bad_request(client, actor, animal, storage_root, data, field):
    key = api_key(actor, "studies:write")
    data = {**data}
    if "order" in data:
        data["files"] = [SimpleUploadedFile("a.jpg", jpeg())]
    answer = client.post(
        reverse("api_patient_photos", args=[animal.pk]), data, HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert answer.status_code == 400
    assert field in answer.json()["error"]["fields"]
    assert stored_objects(storage_root) == []


def test_the_api_refuses_a_client_without_write_scope_and_an_unknown_patient(
    client, actor, animal, storage_root
):
    files = {"files": [SimpleUploadedFile("a.jpg", jpeg())]}
    reader = api_key(actor, "studies:read", "patients:write")
    answer = client.post(
        reverse("api_patient_photos", args=[animal.pk]), files, HTTP_AUTHORIZATION=f"Bearer {reader}"
    )
    assert answer.status_code == 403
    writer = api_key(actor, "studies:write")
    files = {"files": [SimpleUploadedFile("a.jpg", jpeg())]}
    answer = client.post(
        reverse("api_patient_photos", args=[999999]), files, HTTP_AUTHORIZATION=f"Bearer {writer}"
    )
    assert answer.status_code == 404
    assert stored_objects(storage_root) == []


def test_the_endpoint_is_in_the_openapi_schema(client, actor, db):
    key = api_key(actor, "studies:read")
    schema = client.get("/api/schema/", {"format": "json"}, HTTP_AUTHORIZATION=f"Bearer {key}").json()
    operation = schema["paths"]["/api/v1/patients/{id}/photos"]["post"]
    assert "multipart/form-data" in operation["requestBody"]["content"]
    assert {"201", "202", "400"} <= set(operation["responses"])
