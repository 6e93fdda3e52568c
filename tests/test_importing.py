"""Importing DICOM through the web (importing/): a CD's DICOMDIR, a ZIP, files that are not
DICOM, an upload dropped on a patient, the REST API and who may do what. Against a real
worker: the files go through the same receive and ingest as a C-STORE."""

import io
import zipfile
from pathlib import Path

import pydicom
import pytest
from django.urls import reverse
from pydicom.data import get_testdata_file
from pydicom.fileset import FileSet

from imaging.dicom.records.datasets import patient_name
from imaging.models import Instance, InstanceVersion, Study
from importing.models import Upload
from tests.conftest import wait_for
from tests.test_dicomweb_stow import api_key, fresh, sent_bytes, stored_files  # noqa: F401  # api_key: a fixture

pytestmark = pytest.mark.django_db(transaction=True)
CD = Path(get_testdata_file("DICOMDIR")).parent  # pydicom's File-set: CT, MR and CR objects


def cd_files():
    """The bundled CD as a dropped folder sends it, (path in the folder, bytes): its DICOMDIR,
    the files that lists, and a README that is no DICOM object."""
    paths = [CD / "DICOMDIR", CD / "README.txt", *(Path(i.path) for i in FileSet(CD / "DICOMDIR"))]
    return [(f"CD/{p.relative_to(CD).as_posix()}", p.read_bytes()) for p in paths]


def post(client, files, **fields):
    """The drop zone's request: each file, its path in the folder, the target if any."""
    data = {"files": [io.BytesIO(b) for _, b in files], "paths": [n for n, _ in files], **fields}
    for handle, (name, _) in zip(data["files"], files, strict=True):
        handle.name = name.rsplit("/", 1)[-1]
    return client.post(reverse("upload_create"), data)


def done(upload_id):
    return wait_for(
        lambda: Upload.objects.filter(pk=upload_id, status="done").first(), message="linking done"
    )


@pytest.fixture
def desk(client, reference_data, staff):
    client.force_login(staff["front desk"])
    return client


def test_a_cd_with_its_dicomdir_is_imported_whole_and_indexed(desk, storage_root, celery_worker):
    listed = {str(i.SOPInstanceUID) for i in FileSet(CD / "DICOMDIR")}
    answer = post(desk, cd_files())
    assert answer.status_code == 201, answer.content
    upload = done(answer.json()["id"])
    assert {s["sop_instance_uid"] for s in upload.stored} == listed and len(listed) == 31
    # The DICOMDIR itself is read, not stored (it is no image); the README is refused.
    assert upload.refused == [
        {"name": "CD/README.txt", "reason": "Not a DICOM file with File Meta Information (PS3.10 7.1)"}
    ]
    indexed = Instance.objects.filter(sop_instance_uid__in=listed)
    assert indexed.count() == 31
    assert set(indexed.values_list("received_from", flat=True)) == {"WEBUPLOAD"}
    classes = {pydicom.dcmread(storage_root / i.storage_key).SOPClassUID.name for i in indexed}
    assert classes == {"CT Image Storage", "MR Image Storage", "Computed Radiography Image Storage"}
    assert len(upload.studies) == Study.objects.count() == 6
    # Dropped on no animal and naming none we know: all wait in reconciliation.
    assert {s["linked"] for s in upload.studies} == {False}
    page = desk.get(reverse("upload_detail", args=[upload.pk])).content.decode()
    assert "31 files stored, 1 refused" in page and page.count("Waiting for reconciliation") == 6


def test_a_zip_is_unpacked_and_its_non_dicom_member_refused_leaving_nothing(
    desk, storage_root, celery_worker
):
    one, two = fresh(), fresh()
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("study/one.dcm", sent_bytes(one))
        archive.writestr("study/two.dcm", sent_bytes(two))
        archive.writestr("study/notes.txt", b"not an image")
    answer = post(desk, [("images.zip", packed.getvalue())])
    assert answer.status_code == 201 and answer.json()["stored"] == 2
    upload = done(answer.json()["id"])
    assert upload.refused == [
        {
            "name": "images.zip/study/notes.txt",
            "reason": "Not a DICOM file with File Meta Information (PS3.10 7.1)",
        }
    ]
    assert sorted(p.read_bytes() for p in stored_files(storage_root)) == sorted(
        [sent_bytes(one), sent_bytes(two)]
    )
    assert Instance.objects.filter(sop_instance_uid__in=[one.SOPInstanceUID, two.SOPInstanceUID]).count() == 2


def test_a_file_that_is_not_dicom_is_refused_with_its_reason_and_nothing_is_stored(desk, storage_root):
    cut = sent_bytes(fresh())[:2000]  # a DICOM file cut off in its pixel data
    answer = post(desk, [("photo.jpg", b"\xff\xd8\xff\xe0 not dicom"), ("cut.dcm", cut)])
    assert answer.status_code == 201 and (answer.json()["stored"], answer.json()["refused"]) == (0, 2)
    upload = Upload.objects.get(pk=answer.json()["id"])
    reasons = {r["name"]: r["reason"] for r in upload.refused}
    assert reasons["photo.jpg"] == "Not a DICOM file with File Meta Information (PS3.10 7.1)"
    assert reasons["cut.dcm"].startswith(("Malformed data set", "Image without pixel data"))
    assert stored_files(storage_root) == [] and Instance.objects.count() == 0
    assert upload.status == "done"
    page = desk.get(reverse("upload_detail", args=[upload.pk])).content.decode()
    assert "photo.jpg" in page and "Nothing of these was kept." in page


def test_dropped_on_a_patient_the_study_is_linked_there_and_the_headers_agree_the_original_kept(
    desk, storage_root, celery_worker, make_owner, make_patient
):
    biscuit = make_patient("Biscuit", owner=make_owner("Hartley"), patient_id="PX-7")
    ds = fresh(PatientID="CLINIC-ELSEWHERE-1", PatientName="SMITH^REX")
    answer = post(desk, [("rex.dcm", sent_bytes(ds))], patient=str(biscuit.pk))
    assert answer.status_code == 201
    upload = done(answer.json()["id"])
    study = Study.objects.get(study_instance_uid=ds.StudyInstanceUID)
    assert (study.patient, study.link) == (biscuit, Study.Link.MANUAL)
    assert upload.studies[0]["linked"] and upload.studies[0]["patient"] == str(biscuit)
    # What the images said is kept on the study; the stored header is rewritten to the record.
    assert (study.dicom_patient_id, study.dicom_patient_name) == ("CLINIC-ELSEWHERE-1", "SMITH^REX")
    instance = wait_for(lambda: Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID, version__gt=1).first(),
                        message="the header rewritten")  # fmt: skip
    header = pydicom.dcmread(storage_root / instance.storage_key)
    assert (
        (header.PatientID, str(header.PatientName))
        == ("PX-7", patient_name(biscuit))
        == ("PX-7", "Hartley^Biscuit")
    )
    original = InstanceVersion.objects.get(instance=instance)
    assert (storage_root / original.storage_key).read_bytes() == sent_bytes(ds)
    page = desk.get(reverse("upload_detail", args=[upload.pk])).content.decode()
    assert "Dropped on" in page and "Biscuit" in page


def test_the_api_uploads_with_studies_write_and_reads_with_studies_read(
    live_server, storage_root, celery_worker, api_key, make_patient
):
    import requests

    writer, reader = api_key("studies:write"), api_key("studies:read", name="Reader")
    url = f"{live_server.url}/api/v1/uploads"
    ds = fresh()
    files = [("files", ("a.dcm", sent_bytes(ds), "application/dicom"))]
    refused = requests.post(url, files=files, headers={"Authorization": f"Bearer {reader}"}, timeout=30)
    assert refused.status_code == 403 and stored_files(storage_root) == []
    bad = requests.post(url, files=files, data={"patient": "abc"}, headers={"Authorization": f"Bearer {writer}"},
                        timeout=30)  # fmt: skip
    assert bad.status_code == 400 and "patient" in bad.json()["error"]["fields"]
    empty = requests.post(
        url, data={"patient": "1"}, headers={"Authorization": f"Bearer {writer}"}, timeout=30
    )
    assert empty.status_code == 400 and "files" in empty.json()["error"]["fields"]
    made = requests.post(url, files=files, headers={"Authorization": f"Bearer {writer}"}, timeout=30)
    assert made.status_code == 201, made.text
    assert [s["sop_instance_uid"] for s in made.json()["stored"]] == [ds.SOPInstanceUID]
    done(made.json()["id"])
    read = requests.get(
        f"{url}/{made.json()['id']}", headers={"Authorization": f"Bearer {reader}"}, timeout=30
    )
    assert read.status_code == 200 and read.json()["status"] == "done"
    assert read.json()["studies"][0]["study_instance_uid"] == ds.StudyInstanceUID
    assert (
        requests.get(f"{url}/999999", headers={"Authorization": f"Bearer {reader}"}, timeout=30).status_code
        == 404
    )
    schema = requests.get(
        f"{live_server.url}/api/schema/", headers={"Accept": "application/json"}, timeout=30
    )
    paths = schema.json()["paths"]
    assert "multipart/form-data" in paths["/api/v1/uploads"]["post"]["requestBody"]["content"]
    assert "/api/v1/uploads/{id}" in paths


def test_an_upload_over_the_limit_is_413_before_it_is_read(desk, storage_root, settings):
    settings.IMPORT_MAX_BYTES = 1000
    answer = post(desk, [("a.dcm", sent_bytes(fresh()))])
    assert answer.status_code == 413 and "over the" in answer.json()["error"]
    assert stored_files(storage_root) == []


def test_a_file_over_the_per_file_limit_is_refused_and_the_rest_kept(desk, storage_root, settings):
    small, large = fresh(), fresh()
    settings.IMPORT_MAX_FILE_BYTES = len(sent_bytes(small)) + 10
    large.ImageComments = "x" * 5000
    answer = post(desk, [("small.dcm", sent_bytes(small)), ("large.dcm", sent_bytes(large))])
    upload = Upload.objects.get(pk=answer.json()["id"])
    assert [s["name"] for s in upload.stored] == ["small.dcm"]
    assert upload.refused[0]["name"] == "large.dcm" and "Larger than" in upload.refused[0]["reason"]
    assert [p.read_bytes() for p in stored_files(storage_root)] == [sent_bytes(small)]


def test_a_post_without_the_csrf_token_is_refused_and_stores_nothing(reference_data, staff, storage_root):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff["front desk"])
    answer = post(browser, [("a.dcm", sent_bytes(fresh()))])
    assert answer.status_code == 403 and stored_files(storage_root) == [] and not Upload.objects.exists()


def test_who_may_import(client, reference_data, storage_root, django_user_model, make_patient):
    anyone = reverse("upload_create")
    assert client.post(anyone, {}).status_code == 302  # logged out: to the login page
    client.force_login(django_user_model.objects.create_user("nobody", password="x"))
    answer = post(client, [("a.dcm", sent_bytes(fresh()))])
    assert answer.status_code == 403 and stored_files(storage_root) == []
    patient = make_patient("Biscuit")
    page = client.get(reverse("patient_detail", args=[patient.pk]))
    assert page.status_code == 403 or "import-drop" not in page.content.decode()


def test_dropped_on_an_order_the_study_answers_that_order_and_its_animal(
    desk, storage_root, celery_worker, actor, make_patient
):
    from datetime import datetime

    from django.utils.timezone import make_aware

    from imaging.models import Modality, Procedure
    from imaging.orders import services as orders
    from imaging.orders.catalog import procedures_load
    from patients.models import Species

    procedures_load(Procedure, Species)
    biscuit = make_patient("Biscuit", patient_id="PX-8")
    order = orders.order_create(
        actor=actor, patient=biscuit, procedure=Procedure.objects.get(code="DX-THX2"),
        station=Modality.objects.create(ae_title="DRROOM", modality_type="DX"),
        scheduled_start=make_aware(datetime(2026, 3, 2, 10, 30)), past_ok=True,
    )  # fmt: skip
    ds = fresh(PatientID="REFERRAL-3", PatientName="JONES^BISCUIT", AccessionNumber="")
    assert desk.get(reverse("order_detail", args=[order.pk])).content.decode().count("import-drop") >= 1
    answer = post(desk, [("thorax.dcm", sent_bytes(ds))], order=str(order.pk))
    assert answer.status_code == 201
    done(answer.json()["id"])
    study = Study.objects.get(study_instance_uid=ds.StudyInstanceUID)
    assert (study.patient, study.order, study.link) == (biscuit, order, Study.Link.MANUAL)
    other = make_patient("Rex", patient_id="PX-9")
    mismatch = post(desk, [("x.dcm", sent_bytes(fresh()))], order=str(order.pk), patient=str(other.pk))
    assert mismatch.status_code == 400 and mismatch.json()["field"] == "order"


def test_a_folder_is_made_durable_and_queued_for_indexing_a_task_per_50_files(
    desk, storage_root, monkeypatch
):
    """As a C-STORE association's IngestBatch: one indexing task per 50 files, never one per
    file, and each queued only once every file it names is durable (no part file left)."""
    from imaging.ingest import queueing

    tasks = []

    def send_task(name, args, retry=None):
        [messages] = args
        assert all((storage_root / m["storage_key"]).is_file() for m in messages)
        assert not list(storage_root.rglob("*.part"))
        tasks.append((name, [m["storage_key"] for m in messages]))

    monkeypatch.setattr(queueing, "current_app", type("App", (), {"send_task": staticmethod(send_task)}))
    sent = [(f"SCANS/{i:03}.dcm", sent_bytes(fresh())) for i in range(120)]
    answer = post(desk, [*sent[:60], ("SCANS/notes.txt", b"not an image"), *sent[60:]])
    assert answer.status_code == 201, answer.content
    upload = Upload.objects.get(pk=answer.json()["id"])
    assert [s["name"] for s in upload.stored] == [name for name, _ in sent]
    assert [len(keys) for _, keys in tasks] == [50, 50, 20]
    assert {name for name, _ in tasks} == {"imaging.tasks.instances_ingest"}
    keys = [key for _, task_keys in tasks for key in task_keys]
    assert sorted(storage_root / key for key in keys) == stored_files(storage_root)
    assert sorted(p.read_bytes() for p in stored_files(storage_root)) == sorted(b for _, b in sent)


def test_files_over_the_memory_limit_are_spooled_to_disk_and_stored_byte_for_byte(
    desk, storage_root, settings
):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000  # CT_small is 39 KB: both go to temporary files
    sent = [("a.dcm", sent_bytes(fresh())), ("b.dcm", sent_bytes(fresh()))]
    answer = post(desk, sent)
    assert answer.status_code == 201, answer.content
    assert sorted(p.read_bytes() for p in stored_files(storage_root)) == sorted(b for _, b in sent)


def test_the_upload_handler_keeps_small_files_in_memory_within_its_budget_and_spools_the_rest(settings):
    from django.core.files.uploadedfile import InMemoryUploadedFile, TemporaryUploadedFile

    from importing.receiving import UploadFileHandler

    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 100
    handler = UploadFileHandler()
    handler.MEMORY_MOST = 150

    def received(name, chunks):
        handler.new_file("files", name, "application/dicom", None)
        for chunk in chunks:
            assert handler.receive_data_chunk(chunk, 0) is None  # (no other handler sees it)
        return handler.file_complete(sum(len(c) for c in chunks))

    small = received("small.dcm", [b"a" * 60, b"b" * 40])  # 100 bytes: in memory
    large = received("large.dcm", [b"c" * 60, b"d" * 60])  # over 100 bytes: spooled
    over_budget = received("third.dcm", [b"e" * 60])  # 60 more would hold 160 > 150 in memory
    last = received("fourth.dcm", [b"f" * 50])  # 150: still within the budget
    assert isinstance(small, InMemoryUploadedFile) and small.read() == b"a" * 60 + b"b" * 40
    assert isinstance(large, TemporaryUploadedFile) and large.read() == b"c" * 60 + b"d" * 60
    assert large.size == 120 and Path(large.temporary_file_path()).stat().st_size == 120
    assert isinstance(over_budget, TemporaryUploadedFile) and over_budget.read() == b"e" * 60
    assert isinstance(last, InMemoryUploadedFile) and last.read() == b"f" * 50


def test_a_dicomdir_naming_a_file_outside_its_folder_is_refused_and_the_files_sent_still_kept(
    desk, storage_root
):
    listed = [Path(i.path) for i in FileSet(CD / "DICOMDIR")]
    first = listed[0].relative_to(CD).parts
    original = "\\".join(first).encode()  # PS3.10 8.5: a File ID's components, backslashed
    outside = b"..\\..\\" + b"X" * (len(original) - 6)  # as long: no record's offset moves
    directory = (CD / "DICOMDIR").read_bytes()
    assert directory.count(original) == 1
    files = [("CD/DICOMDIR", directory.replace(original, outside)),
             *((f"CD/{p.relative_to(CD).as_posix()}", p.read_bytes()) for p in listed)]  # fmt: skip
    answer = post(desk, files)
    assert answer.status_code == 201, answer.content
    upload = Upload.objects.get(pk=answer.json()["id"])
    [refused] = upload.refused
    assert refused["name"] == "CD/DICOMDIR"
    assert refused["reason"] == (
        f"Not a readable DICOMDIR: the File ID {outside.decode()!r} is not a path inside its folder"
    )
    assert len(upload.stored) == len(listed) == 31  # sent loose, the files are imported all the same
