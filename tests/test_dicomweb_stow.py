"""STOW-RS (PS3.18 10.5) from dicomweb-client against a live server, indexed by a real worker:
the same durable receive and ingest as a C-STORE (tests/test_dicom_store.py)."""

import io
import json
import re
import subprocess
import sys
from urllib.parse import urlparse

import numpy
import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient
from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid

from imaging.models import Instance, Study
from integrations.api.clients import api_client_create
from tests.conftest import PASSWORD, ROOT, free_port, wait_for
from tests.test_dicom_store import TEST_FILES
from tests.test_dicom_store_failures import ct, small_disk  # noqa: F401  # small_disk: a fixture
from vetclinic.audit.models import AuditEntry

SENDER = "Acme Teleradiology"


@pytest.fixture
def api_key(reference_data, actor):
    """A new API client with these scopes; its key."""

    def make(*scopes, name=SENDER):
        return api_client_create(actor=actor, name=name, scopes=list(scopes))[1]

    return make


def client_for(live_server, key=None):
    # A body over chunk_size goes chunked (no Content-Length), which the live server's WSGI
    # server cannot pass on: test_a_chunked_upload_through_gunicorn_is_stored sends one that way.
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return DICOMwebClient(url=f"{live_server.url}/dicomweb", headers=headers, chunk_size=1 << 30)


@pytest.fixture
def stow(live_server, storage_root, api_key):
    return client_for(live_server, api_key("studies:write"))


def fresh(name="CT_small.dcm", **changes):
    """A bundled file under new UIDs, as a data set with its preamble and File Meta."""
    ds = pydicom.dcmread(TEST_FILES / name)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return ds


def ct_file(pixels):
    """tests/test_dicom_store_failures.py's ``ct``, its File Meta naming the same instance."""
    ds = ct(pixels)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def sent_bytes(ds):
    """What dicomweb-client puts in a body part for ``ds`` (store_instances encodes it so)."""
    with io.BytesIO() as out:
        pydicom.dcmwrite(out, ds)
        return out.getvalue()


def not_part10(ds):
    """``ds`` written as a bare data set: no preamble, no 'DICM', no File Meta."""
    bare = pydicom.dcmread(io.BytesIO(sent_bytes(ds)))
    bare.preamble = None
    bare.file_meta = pydicom.dataset.FileMetaDataset()
    return bare


def stored_files(storage_root):
    """The stored objects and any part of one (the worker adds thumbnails elsewhere)."""
    return sorted(path for path in (storage_root / "dicom").rglob("*") if path.is_file())


def items(sequence):
    return [
        (item.get("ReferencedSOPInstanceUID") or "", item.get("FailureReason"), item.get("RetrieveURL"))
        for item in sequence
    ]


def test_an_instance_is_kept_as_sent_indexed_and_linked_to_its_animal(
    stow, storage_root, celery_worker, make_owner, make_patient, client, staff
):
    biscuit = make_patient("Biscuit", owner=make_owner("Hartley"), patient_id="PX-1")
    ds = fresh(PatientID="PX-1", PatientName="HARTLEY^BISCUIT")

    answer = stow.store_instances([ds])

    study_url = f"/dicomweb/studies/{ds.StudyInstanceUID}"
    assert urlparse(answer.RetrieveURL).path == study_url
    [item] = answer.ReferencedSOPSequence
    assert (item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID) == (ds.SOPClassUID, ds.SOPInstanceUID)
    assert urlparse(item.RetrieveURL).path == (
        f"{study_url}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )
    assert "FailedSOPSequence" not in answer
    # Durable before the answer: the file is there, the whole body part as it was sent.
    [path] = stored_files(storage_root)
    assert path.read_bytes() == sent_bytes(ds)

    instance = wait_for(lambda: Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).first(),
                        message="the instance indexed")  # fmt: skip
    assert (storage_root / instance.storage_key).read_bytes() == sent_bytes(ds)
    assert instance.received_from == "STOW-RS"
    study = Study.objects.get(series__instances=instance)
    assert (study.patient, study.link) == (biscuit, Study.Link.PATIENT_ID)
    # Who sent it: the API client, in the audit log and on the study page.
    entries = AuditEntry.objects.filter(object_type__model="study", object_id=str(study.pk))
    assert sorted((e.action, e.channel, e.actor) for e in entries) == [
        ("link", "api", SENDER), ("receive", "api", SENDER)
    ]  # fmt: skip
    client.force_login(staff["admin"])  # (the history is the admin's to see)
    page = client.get(f"/studies/{study.pk}/").content.decode()
    assert SENDER in page and "STOW-RS" in page


def test_a_mixed_request_stores_the_good_ones_and_names_each_failure_202(
    stow, storage_root, celery_worker, live_server
):
    study = generate_uid()
    good = fresh(StudyInstanceUID=study)
    bare = not_part10(fresh(StudyInstanceUID=study))
    elsewhere = fresh()  # another study than the URL's (PS3.18 10.5.1.2)

    answer = stow.store_instances([good, bare, elsewhere], study_instance_uid=study)

    assert urlparse(answer.RetrieveURL).path == f"/dicomweb/studies/{study}"
    assert [(uid, reason) for uid, reason, _url in items(answer.ReferencedSOPSequence)] == [
        (good.SOPInstanceUID, None)
    ]
    assert [(uid, reason) for uid, reason, _url in items(answer.FailedSOPSequence)] == [
        ("", 0xC000),  # not a Part 10 file: its UIDs cannot be read
        (elsewhere.SOPInstanceUID, 0xA900),
    ]
    assert answer.FailedSOPSequence[1].ReferencedSOPClassUID == elsewhere.SOPClassUID
    [path] = stored_files(storage_root)  # only the good one, and whole
    assert path.read_bytes() == sent_bytes(good)
    wait_for(lambda: Instance.objects.exists(), message="the good one indexed")
    assert list(Instance.objects.values_list("sop_instance_uid", flat=True)) == [good.SOPInstanceUID]


def test_a_request_whose_every_instance_fails_is_409_and_keeps_nothing(stow, storage_root):
    study = generate_uid()
    with pytest.raises(requests.HTTPError) as error:
        stow.store_instances([not_part10(fresh()), fresh()], study_instance_uid=study)
    response = error.value.response
    assert response.status_code == 409
    assert response.headers["Content-Type"] == "application/dicom+json"
    answer = pydicom.Dataset.from_json(response.json())
    assert [reason for _uid, reason, _url in items(answer.FailedSOPSequence)] == [0xC000, 0xA900]
    assert "ReferencedSOPSequence" not in answer
    assert "Study Instance UID differs" in response.headers["Warning"]
    assert stored_files(storage_root) == []


def test_a_full_disk_fails_that_instance_out_of_resources_and_leaves_nothing_half_stored(
    stow,
    small_disk,
    celery_worker,  # noqa: F811  # (the fixture, imported)
):
    small, large, other = ct_file(30_000), ct_file(2_000_000), ct_file(30_000)  # the tmpfs holds 1 MiB

    answer = stow.store_instances([small, large, other])

    assert [uid for uid, _reason, _url in items(answer.ReferencedSOPSequence)] == [
        small.SOPInstanceUID, other.SOPInstanceUID
    ]  # fmt: skip
    assert [(uid, reason) for uid, reason, _url in items(answer.FailedSOPSequence)] == [
        (large.SOPInstanceUID, 0xA700)
    ]
    assert not list(small_disk.rglob("*.part"))
    assert sorted(path.read_bytes() for path in small_disk.rglob("*.dcm")) == sorted(
        [sent_bytes(small), sent_bytes(other)]
    )
    wait_for(lambda: Instance.objects.count() == 2, message="the two stored indexed")


def post(live_server, body, content_type, key=None, **headers):
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return requests.post(
        f"{live_server.url}/dicomweb/studies", data=body, headers={"Content-Type": content_type, **headers}
    )


def multipart_body(*parts, boundary="b0undary"):
    return b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n"
        for part in parts
    ) + b"--" + boundary.encode() + b"--\r\n"  # fmt: skip


@pytest.mark.parametrize(
    "content_type",
    [
        "application/dicom",
        'multipart/related; type="application/dicom+xml"; boundary=b0undary',
        "multipart/form-data; boundary=b0undary",
    ],  # fmt: skip
)
def test_a_body_that_is_not_multipart_related_dicom_is_415(live_server, storage_root, api_key, content_type):
    response = post(live_server, multipart_body(sent_bytes(fresh())), content_type, api_key("studies:write"))
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert stored_files(storage_root) == []


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"no parts here", 'multipart/related; type="application/dicom"; boundary=b0undary'),
        (b"--b0undary\r\n\r\nDICM but never closed", 'multipart/related; type="application/dicom"; boundary=b0undary'),
        (b"--b0undary--\r\n", 'multipart/related; type="application/dicom"; boundary=b0undary'),
        (b"--b0undary--\r\n", 'multipart/related; type="application/dicom"'),  # no boundary
    ],
)  # fmt: skip
def test_a_malformed_multipart_body_is_400(live_server, storage_root, api_key, body, content_type):
    response = post(live_server, body, content_type, api_key("studies:write"))
    assert response.status_code == 400
    assert response.json()["error"]["message"]
    assert stored_files(storage_root) == []


def test_an_accept_we_cannot_answer_in_is_406(live_server, storage_root, api_key):
    body = multipart_body(sent_bytes(fresh()))
    response = post(live_server, body, 'multipart/related; type="application/dicom"; boundary=b0undary',
                    api_key("studies:write"), Accept="application/dicom+xml")  # fmt: skip
    assert response.status_code == 406
    assert stored_files(storage_root) == []


def test_storing_needs_a_key_with_studies_write(live_server, storage_root, api_key):
    with pytest.raises(requests.HTTPError) as error:
        client_for(live_server).store_instances([fresh()])
    assert error.value.response.status_code == 401
    with pytest.raises(requests.HTTPError) as error:
        client_for(live_server, api_key("studies:read", name="Viewer")).store_instances([fresh()])
    assert error.value.response.status_code == 403
    assert "studies:write" in error.value.response.json()["error"]["message"]
    assert stored_files(storage_root) == []


def test_a_body_over_the_limit_is_413_before_it_is_read(stow, storage_root, settings):
    settings.DICOMWEB_STOW_MAX_BYTES = 10_000  # CT_small is about 40 KB
    with pytest.raises(requests.HTTPError) as error:
        stow.store_instances([fresh()])
    assert error.value.response.status_code == 413
    assert error.value.response.json()["error"]["code"] == "request_too_large"
    assert stored_files(storage_root) == []


def test_a_staff_session_stores_with_its_csrf_token(live_server, storage_root, reference_data, staff):
    site = live_server.url.replace("localhost", "127.0.0.1")  # (a cookie jar keeps no cookie for "localhost")
    session = requests.Session()
    login = session.get(f"{site}/login/")
    session.post(login.url, data={"username": "radiologist", "password": PASSWORD,
                 "csrfmiddlewaretoken": session.cookies["csrftoken"]})  # fmt: skip
    assert "sessionid" in session.cookies
    body = multipart_body(sent_bytes(fresh()))
    headers = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=b0undary'}
    response = session.post(f"{site}/dicomweb/studies", data=body, headers=headers)
    assert response.status_code == 403 and "CSRF" in response.json()["error"]["message"]
    assert stored_files(storage_root) == []
    headers["X-CSRFToken"] = session.cookies["csrftoken"]
    response = session.post(f"{site}/dicomweb/studies", data=body, headers=headers)
    assert response.status_code == 200, response.text
    assert len(stored_files(storage_root)) == 1


@pytest.fixture
def gunicorn(process_env, tmp_path):
    """The production web server (gunicorn), which passes a chunked body on to Django ended
    (wsgi.input_terminated), on a free port; returns a function (env overrides)."""
    started = []

    def start(**env):
        port = free_port()
        log = tmp_path / f"gunicorn-{port}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "vetclinic.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
                cwd=ROOT, env={**process_env, **env}, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append((process, log))
        url = f"http://127.0.0.1:{port}"

        def answers():
            assert process.poll() is None, log.read_text()
            try:
                return requests.get(f"{url}/api/v1/health", timeout=10).status_code == 200
            except (requests.ConnectionError, requests.Timeout):
                return False

        wait_for(answers, timeout=60, message="gunicorn")
        return url

    yield start
    for process, log in started:
        process.terminate()
        process.wait(timeout=20)
        print(log.read_text()[-4000:])  # shown by pytest when the test failed


def test_a_chunked_upload_through_gunicorn_is_stored_and_one_over_the_limit_is_413(
    gunicorn, storage_root, api_key
):
    key = api_key("studies:write")
    url = gunicorn(DICOMWEB_STOW_MAX_BYTES=str(3 << 20))
    # dicomweb-client's own default: a body over 1 MB goes chunked, with no Content-Length.
    stow = DICOMwebClient(url=f"{url}/dicomweb", headers={"Authorization": f"Bearer {key}"})
    sent = [ct_file(400_000) for _ in range(4)]  # 1.6 MB

    answer = stow.store_instances(sent)

    assert [uid for uid, _reason, _url in items(answer.ReferencedSOPSequence)] == [
        ds.SOPInstanceUID for ds in sent
    ]
    assert sorted(path.read_bytes() for path in stored_files(storage_root)) == sorted(map(sent_bytes, sent))

    too_many = [ct_file(400_000) for _ in range(10)]  # 4 MB, told only by reading it
    with pytest.raises(requests.HTTPError) as error:
        stow.store_instances(too_many)
    assert error.value.response.status_code == 413
    message = error.value.response.json()["error"]["message"]
    kept = re.search(r"The (\d+) instance\(s\) before it were stored", message)  # sent again: no change
    assert kept and len(stored_files(storage_root)) == len(sent) + int(kept[1])
    assert not list(storage_root.rglob("*.part"))


@pytest.mark.django_db
def test_a_method_no_view_takes_at_a_stow_address_is_a_json_405(client):
    response = client.put("/dicomweb/studies", data=b"", content_type="application/dicom")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in response["Allow"]


def test_a_body_of_no_declared_length_through_a_server_that_does_not_end_it_is_411(
    client, storage_root, api_key
):
    # Sent chunked to Django's own server (runserver): no Content-Length, and no
    # wsgi.input_terminated to say the stream ends with the body; only gunicorn passes it on.
    response = client.post(
        "/dicomweb/studies", data=multipart_body(sent_bytes(fresh())),
        content_type='multipart/related; type="application/dicom"; boundary=b0undary',
        headers={"Authorization": f"Bearer {api_key('studies:write')}"}, CONTENT_LENGTH="",
    )  # fmt: skip
    assert response.status_code == 411
    assert "Content-Length" in response.json()["error"]["message"]
    assert stored_files(storage_root) == []


# STOW-RS with metadata and bulk data (PS3.18 10.5.1): dicomweb-client sends only Part 10 files,
# so the body is built here as the standard spells it.
JSON_TYPE = 'multipart/related; type="application/dicom+json"; boundary=b0undary'


def metadata_and_bulk(ds, base="https://sender.example/bulk"):
    """``ds`` as DICOM JSON whose values over 1 KiB are BulkDataURIs, and those values:
    {uri: bytes}."""
    values = {}

    def uri_for(element):
        uri = f"{base}/{ds.SOPInstanceUID}/{element.tag:08X}"
        values[uri] = element.value
        return uri

    return ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=uri_for), values


def json_body(instances, bulk_parts, boundary="b0undary"):
    """The metadata part (a JSON array), then each bulk part: (Content-Location, Content-Type, bytes)."""
    mark = f"--{boundary}\r\n".encode()
    body = mark + b"Content-Type: application/dicom+json\r\n\r\n" + json.dumps(instances).encode() + b"\r\n"
    for location, content_type, data in bulk_parts:
        body += mark + f"Content-Type: {content_type}\r\nContent-Location: {location}\r\n\r\n".encode()
        body += data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def stored_object(storage_root, sop_instance_uid):
    [path] = [p for p in stored_files(storage_root) if pydicom.dcmread(p).SOPInstanceUID == sop_instance_uid]
    return pydicom.dcmread(path)


def test_metadata_and_uncompressed_bulk_data_are_stored_as_one_part10_object(
    live_server, storage_root, api_key, celery_worker
):
    ds = fresh("CT_small.dcm", PatientID="PX-JSON")
    metadata, values = metadata_and_bulk(ds)
    [pixel_uri] = [uri for uri in values if uri.endswith("7FE00010")]
    parts = [(uri, "application/octet-stream", bytes(value)) for uri, value in values.items()]

    response = post(live_server, json_body([metadata], parts), JSON_TYPE, api_key("studies:write"))

    assert response.status_code == 200, response.text
    answer = pydicom.Dataset.from_json(response.json())
    assert [uid for uid, reason, _url in items(answer.ReferencedSOPSequence)] == [ds.SOPInstanceUID]
    assert metadata["7FE00010"] == {"vr": "OW", "BulkDataURI": pixel_uri}  # (sent as bulk data)
    kept = stored_object(storage_root, ds.SOPInstanceUID)
    assert kept.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert kept.PixelData == ds.PixelData
    assert numpy.array_equal(kept.pixel_array, ds.pixel_array)
    assert [(e.tag, e.value) for e in kept if e.tag != 0x7FE00010] == [
        (e.tag, e.value) for e in ds if e.tag != 0x7FE00010
    ]
    instance = wait_for(lambda: Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).first(),
                        message="the instance indexed")  # fmt: skip
    assert instance.received_from == "STOW-RS" and instance.rows == ds.Rows


@pytest.mark.parametrize("content_type", ["image/jp2", "image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90"])
def test_compressed_pixel_data_in_its_own_media_type_is_encapsulated_as_its_transfer_syntax(
    live_server, storage_root, api_key, content_type
):
    ds = fresh("MR_small_jp2klossless.dcm")
    [frame] = generate_frames(ds.PixelData, number_of_frames=1)
    metadata, values = metadata_and_bulk(ds)
    parts = [
        (uri, content_type, frame)
        if uri.endswith("7FE00010")
        else (uri, "application/octet-stream", bytes(value))
        for uri, value in values.items()
    ]

    response = post(live_server, json_body([metadata], parts), JSON_TYPE, api_key("studies:write"))

    assert response.status_code == 200, response.text
    kept = stored_object(storage_root, ds.SOPInstanceUID)
    assert kept.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    assert numpy.array_equal(kept.pixel_array, ds.pixel_array)


def test_metadata_instances_fail_each_with_its_reason_and_the_rest_are_stored_202(
    live_server, storage_root, api_key
):
    study = generate_uid()
    good, dangling, unknown_syntax, png, elsewhere = (fresh(StudyInstanceUID=study) for _ in range(5))
    elsewhere.StudyInstanceUID = generate_uid()  # not the URL's study (PS3.18 10.5.1.2)
    instances, parts = [], []
    for ds in (good, dangling, unknown_syntax, png, elsewhere):
        metadata, values = metadata_and_bulk(ds)
        instances.append(metadata)
        for uri, value in values.items():
            if ds is dangling:
                continue  # its BulkDataURI names no part
            parts.append((uri, "image/png" if ds is png else "application/octet-stream", bytes(value)))
    instances[2]["00020010"] = {"vr": "UI", "Value": ["1.2.3.4.5"]}  # no transfer syntax we know

    response = requests.post(
        f"{live_server.url}/dicomweb/studies/{study}", data=json_body(instances, parts),
        headers={"Content-Type": JSON_TYPE, "Authorization": f"Bearer {api_key('studies:write')}"},
    )  # fmt: skip

    assert response.status_code == 202, response.text
    answer = pydicom.Dataset.from_json(response.json())
    assert [uid for uid, _reason, _url in items(answer.ReferencedSOPSequence)] == [good.SOPInstanceUID]
    assert [(uid, reason) for uid, reason, _url in items(answer.FailedSOPSequence)] == [
        (dangling.SOPInstanceUID, 0xC000),
        (unknown_syntax.SOPInstanceUID, 0xC122),
        (png.SOPInstanceUID, 0xC122),
        (elsewhere.SOPInstanceUID, 0xA900),
    ]
    assert "names no part of the request" in response.headers["Warning"]
    assert [pydicom.dcmread(path).SOPInstanceUID for path in stored_files(storage_root)] == [
        good.SOPInstanceUID
    ]


def test_a_part10_file_in_a_transfer_syntax_we_do_not_know_fails_c122_and_alone_is_409(
    live_server, storage_root, api_key
):
    sent = sent_bytes(fresh())
    unknown = sent.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.3.4.5.6.7.8.9.10", 1)  # same length
    assert unknown != sent
    response = post(live_server, multipart_body(unknown), 'multipart/related; type="application/dicom"; boundary=b0undary',
                    api_key("studies:write"))  # fmt: skip
    assert response.status_code == 409
    answer = pydicom.Dataset.from_json(response.json())
    assert [reason for _uid, reason, _url in items(answer.FailedSOPSequence)] == [0xC122]
    assert "1.2.3.4.5.6.7.8.9.10 is not one this archive stores" in response.headers["Warning"]
    assert stored_files(storage_root) == []


@pytest.mark.parametrize(
    "body, message",
    [
        (b"--b0undary\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--b0undary--\r\n", "first part"),
        (b"--b0undary\r\nContent-Type: application/dicom+json\r\n\r\n{\"a\": 1}\r\n--b0undary--\r\n", "JSON array"),
        (b"--b0undary\r\nContent-Type: application/dicom+json\r\n\r\n[{]\r\n--b0undary--\r\n", "not JSON"),
        (b"--b0undary\r\n\r\n[{}]\r\n--b0undary\r\nContent-Type: application/octet-stream\r\n\r\nxx\r\n--b0undary--\r\n",
         "Content-Location"),
    ],
)  # fmt: skip
def test_a_metadata_request_that_is_not_one_is_400_saying_why(
    live_server, storage_root, api_key, body, message
):
    response = post(live_server, body, JSON_TYPE, api_key("studies:write"))
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert stored_files(storage_root) == []


def test_xml_metadata_is_refused_415_naming_what_is_taken(live_server, storage_root, api_key):
    response = post(live_server, b"--b0undary--\r\n", 'multipart/related; type="application/dicom+xml"; boundary=b0undary',
                    api_key("studies:write"))  # fmt: skip
    assert response.status_code == 415
    assert "application/dicom+json" in response.json()["error"]["message"]
