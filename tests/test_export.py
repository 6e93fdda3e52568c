"""Export (imaging/export/): a study as a ZIP with a DICOMDIR read back by pydicom's FileSet, an
image with its saved annotations burned in, and the signed report as a PDF; through the study
page's links and the REST API, with their permissions and errors."""

import io
import os
import zipfile
from pathlib import Path

import numpy
import pydicom
import pytest
from django.urls import reverse
from PIL import Image
from pydicom.fileset import FileSet
from pydicom.uid import generate_uid
from pypdf import PdfReader

from imaging.annotations.services import annotation_save
from imaging.ingest import storage
from imaging.models import Instance, Study
from imaging.reports.services import report_finalize, report_save
from integrations.api.clients import api_client_create
from tests.test_annotations import image_id
from tests.test_browser_viewer import ct_slice
from tests.test_dicomweb_wado import ingest, uids  # noqa: F401  (fixtures)
from vetclinic.audit.models import AuditEntry
from vetclinic.audit.services import Actor

pytestmark = pytest.mark.django_db(transaction=True)

SPACING = 0.661468  # CT_small's Pixel Spacing (mm), both ways; its rows run along x, columns along y
YELLOW = (255, 255, 0)
SHOTS = Path(os.environ.get("VETPACS_SHOTS", "/tmp/vetpacs-shots"))  # what the exports look like, to look at


@pytest.fixture
def study(reference_data, ingest, make_patient, make_owner, settings):  # noqa: F811
    """Two series: a CT of three slices and one other of a single slice, linked to Bella."""
    settings.CLINIC_NAME, settings.CLINIC_ADDRESS = (
        "Northfield Veterinary Hospital",
        "1 Mill Lane\nNorthfield",
    )
    study_uid, ct_uid, other_uid = generate_uid(), generate_uid(), generate_uid()
    objects = [ct_slice(study_uid, ct_uid, number) for number in range(3)]
    extra, changes = ct_slice(study_uid, other_uid, 1)
    objects.append((extra, {**changes, "SeriesNumber": 2}))
    ingest(
        *((ds, {**changes, "PatientName": "Smith^Bella", "PatientID": "P-100"}) for ds, changes in objects)
    )
    bella = make_patient("Bella", owner=make_owner("Smith"), patient_id="P-100")
    Study.objects.filter(study_instance_uid=study_uid).update(patient=bella, description="Thorax")
    return Study.objects.get(study_instance_uid=study_uid), ct_uid, other_uid


def logged_in(client, staff, role):
    client.force_login(staff[role])
    return client


def zipped(response):
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def file_set_of(archive, folder):
    archive.extractall(folder)
    return FileSet(pydicom.dcmread(folder / "DICOMDIR"))


def test_the_zip_reads_back_as_a_file_set_of_every_stored_object_byte_for_byte(
    study, staff, client, tmp_path
):
    study, ct_uid, other_uid = study
    archive = zipped(
        logged_in(client, staff, "veterinarian").get(reverse("study_export_zip", args=[study.pk]))
    )
    file_set = file_set_of(archive, tmp_path)
    stored = {
        i.sop_instance_uid: storage.object_get(i.storage_key)
        for i in Instance.objects.filter(series__study=study)
    }
    assert len(stored) == 4 and len(file_set) == 4
    for item in file_set:
        assert item.StudyInstanceUID == study.study_instance_uid
        with open(item.path, "rb") as exported:
            assert exported.read() == stored[item.SOPInstanceUID]  # byte for byte as stored
        # PS3.10 8.2: each File ID component up to 8 characters of A-Z, 0-9 and _.
        for component in item.FileID.split("/") if "/" in item.FileID else item.FileID.split("\\"):
            assert 1 <= len(component) <= 8 and component == component.upper()
    assert {item.SOPInstanceUID for item in file_set} == set(stored)
    assert file_set.find(PatientID="P-100")
    names = archive.namelist()
    previews = [name for name in names if name.startswith("PREVIEWS/")]
    assert previews == ["PREVIEWS/SERIES01.JPG", "PREVIEWS/SERIES02.JPG"]
    with Image.open(io.BytesIO(archive.read(previews[0]))) as preview:
        assert preview.format == "JPEG" and preview.size == (128, 128)
        # The middle slice of the CT (number 1): its bright square from row 30 to 60, columns 20 to 100.
        grey = numpy.asarray(preview.convert("L"))
        assert grey[45, 60] > 140 and grey[5, 60] < 70
    readme = archive.read("README.TXT").decode()
    assert "Northfield Veterinary Hospital" in readme and "Bella" in readme and "Thorax" in readme
    assert "DICOMDIR" in readme and "PREVIEWS/SERIES01.JPG" in readme
    entry = AuditEntry.objects.filter(action="exported").get()
    assert entry.changes["instances"] == [4]


def test_a_selection_of_one_series_holds_only_that_series(study, staff, client, tmp_path):
    study, ct_uid, other_uid = study
    address = reverse("study_export_zip", args=[study.pk]) + f"?series={other_uid}"
    archive = zipped(logged_in(client, staff, "veterinarian").get(address))
    file_set = file_set_of(archive, tmp_path)
    assert [item.SeriesInstanceUID for item in file_set] == [other_uid]
    assert [name for name in archive.namelist() if name.startswith("PREVIEWS/")] == ["PREVIEWS/SERIES01.JPG"]
    unknown = client.get(reverse("study_export_zip", args=[study.pk]) + "?series=1.2.3")
    assert unknown.status_code == 404 and "1.2.3" in unknown.json()["error"]["fields"]["series"][0]


def length_line(study, series_uid, sop, start, end, text="Length 19.8 mm"):
    """A Cornerstone3D Length annotation between two world points (mm) on the image."""
    return {
        "annotationUID": generate_uid(prefix=None)[:36],
        "metadata": {"toolName": "Length", "referencedImageId": image_id(study, series_uid, sop)},
        "data": {
            "handles": {"points": [start, end], "textBox": {"worldPosition": [40, 70, 0]}},
            "vetpacs": {"kind": "length", "label": "Length", "value": 19.8, "unit": "mm", "text": text,
                        "reference": ""},
        },
    }  # fmt: skip


def test_the_burned_in_image_differs_from_the_plain_one_where_the_saved_line_is(study, staff, client):
    study, ct_uid, _ = study
    first = Instance.objects.get(series__series_instance_uid=ct_uid, instance_number=1)
    # Along row 30 (y = 30 pixels), from column 15 to column 75: world x = column x spacing.
    start, end = [15 * SPACING, 30 * SPACING, 0], [75 * SPACING, 30 * SPACING, 0]
    annotation_save(
        actor=Actor.for_user(staff["veterinarian"]), study=study, version=0, key_images=[],
        annotations=[length_line(study, ct_uid, first.sop_instance_uid, start, end)],
    )  # fmt: skip
    vet = logged_in(client, staff, "veterinarian")
    address = reverse("image_export", args=[study.pk, first.sop_instance_uid, 1, "png"])
    plain = numpy.asarray(Image.open(io.BytesIO(vet.get(address + "?annotations=0").content)).convert("RGB"))
    burned = numpy.asarray(Image.open(io.BytesIO(vet.get(address + "?annotations=1").content)).convert("RGB"))
    assert plain.shape == burned.shape == (128, 128, 3)
    SHOTS.mkdir(parents=True, exist_ok=True)
    Image.fromarray(burned).resize((512, 512), Image.Resampling.NEAREST).save(SHOTS / "export-burned.png")
    for column in range(17, 74):
        assert tuple(burned[30, column]) == YELLOW and tuple(plain[30, column]) != YELLOW
    differs = numpy.any(burned != plain, axis=2)
    # Nothing changed above the line, nor left of it, nor below it away from the label (x 60.., y 105..).
    assert not differs[:27].any() and not differs[:, :11].any() and not differs[36:100].any()
    assert differs[100:, 55:].any()  # the label "Length 19.8 mm" at world (40, 70) mm: pixel (60, 106)
    jpeg = vet.get(reverse("image_export", args=[study.pk, first.sop_instance_uid, 1, "jpg"]))
    assert jpeg["Content-Type"] == "image/jpeg"
    red, green, blue = numpy.asarray(Image.open(io.BytesIO(jpeg.content)).convert("RGB"))[30, 45].astype(int)
    # Yellow on the grey square (159), give or take the JPEG's loss (its colour is subsampled).
    assert red > 220 and green > 220 and red - blue > 60
    # Another frame or image of the study has no marks: it is the plain render.
    other = Instance.objects.get(series__series_instance_uid=ct_uid, instance_number=2)
    again = vet.get(reverse("image_export", args=[study.pk, other.sop_instance_uid, 1, "png"]))
    plain_other = vet.get(
        reverse("image_export", args=[study.pk, other.sop_instance_uid, 1, "png"]) + "?annotations=0"
    )
    assert again.content == plain_other.content
    beyond = vet.get(address.replace("/frames/1/", "/frames/2/"))
    assert beyond.status_code == 404 and beyond.json()["error"]["fields"]["frame"]
    assert vet.get(address + "?annotations=yes").status_code == 400
    missing = vet.get(reverse("image_export", args=[study.pk, "1.2.3.4", 1, "png"]))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def pdf_text(body):
    reader = PdfReader(io.BytesIO(body))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def test_the_signed_report_is_a_pdf_with_its_text_the_letterhead_and_the_key_image(study, staff, client):
    study, ct_uid, _ = study
    vet = Actor.for_user(staff["veterinarian"])
    first = Instance.objects.get(series__series_instance_uid=ct_uid, instance_number=1)
    report_save(actor=vet, study=study, findings="Draft only.", conclusion="")
    desk = logged_in(client, staff, "front desk")
    draft = desk.get(reverse("report_export_pdf", args=[study.pk]))
    assert draft.status_code == 409 and "draft" in draft.json()["error"]["fields"]["report"][0]
    annotation_save(
        actor=vet, study=study, version=0, annotations=[],
        key_images=[{"seriesUid": ct_uid, "sopInstanceUid": first.sop_instance_uid, "frame": 1,
                     "imageId": image_id(study, ct_uid, first.sop_instance_uid)}],
    )  # fmt: skip
    report_finalize(
        actor=vet, study=study, findings="Mild bronchial pattern in the caudal lung lobes.",
        conclusion="Feline asthma is likely.",
    )  # fmt: skip
    response = desk.get(
        reverse("report_export_pdf", args=[study.pk])
    )  # the front desk prints it for the owner
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "export-report.pdf").write_bytes(response.content)
    reader, text = pdf_text(response.content)
    assert len(reader.pages) == 1
    assert "Northfield Veterinary Hospital" in text and "1 Mill Lane" in text
    assert "Mild bronchial pattern in the caudal lung lobes." in text and "Feline asthma is likely." in text
    assert "Bella" in text and "Key images" in text
    images = list(reader.pages[0].images)
    assert len(images) == 1 and images[0].image.size == (128, 128)


def test_the_front_desk_may_not_take_the_images_out_and_the_api_follows_scopes(study, staff, client, actor):
    study, ct_uid, _ = study
    first = Instance.objects.get(series__series_instance_uid=ct_uid, instance_number=1)
    desk = logged_in(client, staff, "front desk")
    assert desk.get(reverse("study_export_zip", args=[study.pk])).status_code == 403
    assert (
        desk.get(reverse("image_export", args=[study.pk, first.sop_instance_uid, 1, "jpg"])).status_code
        == 403
    )
    assert desk.get(reverse("api_study_export_zip", args=[study.pk])).status_code == 403
    assert (
        desk.get(reverse("api_report_pdf", args=[study.pk])).json()["error"]["code"] == "not_found"
    )  # no report

    _, images_key = api_client_create(actor=actor, name="Teleradiology", scopes=["studies:read"])
    _, reports_key = api_client_create(actor=actor, name="PMS", scopes=["reports:read"])
    images, reports = (
        {"HTTP_AUTHORIZATION": f"Bearer {images_key}"},
        {"HTTP_AUTHORIZATION": f"Bearer {reports_key}"},
    )
    client.logout()
    archive = zipped(
        client.get(reverse("api_study_export_zip", args=[study.pk]) + f"?series={ct_uid}", **images)
    )
    assert sum(name.startswith("PT") for name in archive.namelist()) == 3
    assert client.get(reverse("api_study_export_zip", args=[study.pk]), **reports).status_code == 403
    picture = client.get(
        reverse("api_image_export", args=[study.pk, first.sop_instance_uid, 1, "jpg"]), **images
    )
    assert picture.status_code == 200 and picture["Content-Type"] == "image/jpeg"
    missing = client.get(reverse("api_study_export_zip", args=[99999999]), **images)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    unknown = client.get(reverse("api_study_export_zip", args=[study.pk]) + "?series=9.9", **images)
    assert unknown.status_code == 404 and "9.9" in unknown.json()["error"]["fields"]["series"][0]
    bad = client.get(reverse("api_study_export_zip", args=[study.pk]) + "?series=abc", **images)
    assert bad.status_code == 400 and "series" in bad.json()["error"]["fields"]
    window = client.get(
        reverse("api_image_export", args=[study.pk, first.sop_instance_uid, 1, "png"]) + "?window=40,0",
        **images,
    )
    assert window.status_code == 400 and "window" in window.json()["error"]["fields"]
    assert client.get(reverse("api_report_pdf", args=[study.pk]), **images).status_code == 403
    assert (
        client.get(reverse("api_report_pdf", args=[99999999]), **reports).json()["error"]["code"]
        == "not_found"
    )


def test_the_study_page_links_to_the_exports_as_the_role_allows(study, staff, client):
    study, _, _ = study
    page = (
        logged_in(client, staff, "veterinarian")
        .get(reverse("study_detail", args=[study.pk]))
        .content.decode()
    )
    assert reverse("study_export_zip", args=[study.pk]) in page
    assert reverse("report_export_pdf", args=[study.pk]) not in page  # no signed report yet
    page = (
        logged_in(client, staff, "front desk").get(reverse("study_detail", args=[study.pk])).content.decode()
    )
    assert reverse("study_export_zip", args=[study.pk]) not in page


def test_a_study_whose_stored_object_is_gone_is_refused_before_any_byte_is_sent(study, staff, client):
    study, ct_uid, _ = study
    lost = Instance.objects.get(series__series_instance_uid=ct_uid, instance_number=2)
    storage.object_delete(lost.storage_key)
    response = logged_in(client, staff, "veterinarian").get(reverse("api_study_export_zip", args=[study.pk]))
    assert response.status_code == 409 and response["Content-Type"] == "application/json"
    assert lost.sop_instance_uid in response.json()["error"]["fields"]["instance"][0]
    # The other series is still whole, and exports.
    other = (
        reverse("study_export_zip", args=[study.pk])
        + f"?series={study.series.exclude(series_instance_uid=ct_uid).get().series_instance_uid}"
    )
    assert len(zipped(client.get(other)).namelist()) == 4  # DICOMDIR, the object, its preview, README.TXT


def test_the_report_pdf_link_appears_once_the_report_is_signed(study, staff, client):
    study, _, _ = study
    report_finalize(
        actor=Actor.for_user(staff["veterinarian"]), study=study, findings="No abnormality.", conclusion="Normal."
    )  # fmt: skip
    page = (
        logged_in(client, staff, "front desk").get(reverse("study_detail", args=[study.pk])).content.decode()
    )
    assert reverse("report_export_pdf", args=[study.pk]) in page and "Report PDF" in page
    pdf = client.get(reverse("report_export_pdf", args=[study.pk]))
    _, text = pdf_text(pdf.content)
    assert "No abnormality." in text and "Key images" not in text  # none flagged: none shown
