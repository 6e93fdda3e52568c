"""WADO-RS against a live server, with dicomweb-client (a client nobody here wrote): studies,
series and instances back byte for byte as stored or decompressed when asked, metadata kept at
indexing (and after a header rewrite or a replacing object), frames, bulk data and the errors."""

import io

import numpy
import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient
from django.core.management import call_command
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from imaging.archive.metadata import instances_metadata
from imaging.archive.tasks import metadata_keep_task
from imaging.ingest import storage
from imaging.ingest.receive import instance_receive
from imaging.ingest.tasks import instances_ingest
from imaging.models import Instance, InstanceMetadata
from imaging.reconcile.services import study_headers_rewrite, study_link_manual
from integrations.api.clients import api_client_create
from tests.test_dicomweb_rendered import multipart
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.django_db(transaction=True)


class Collected:
    """Stands in for the association's IngestBatch: keeps the indexing messages."""

    def __init__(self):
        self.messages = []

    def add(self, message):
        self.messages.append(message)


@pytest.fixture
def ingest(storage_root, tmp_path):
    """Receive objects as the C-STORE handler does, then run the ingest task on their messages
    and the metadata task the index queues after its commit (the real indexing path). Each
    object is a pydicom test file (or a data set) with the UIDs given."""

    def ingest_objects(*objects):
        batch = Collected()
        for name, changes in objects:
            ds = name if isinstance(name, pydicom.Dataset) else pydicom.dcmread(get_testdata_file(name))
            for keyword, value in changes.items():
                setattr(ds, keyword, value)
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=True)
            instance_receive(
                source=out.getvalue()[_data_set_start(out.getvalue()) :],
                transfer_syntax=ds.file_meta.TransferSyntaxUID, sop_class_uid=ds.SOPClassUID,
                sop_instance_uid=ds.SOPInstanceUID, calling_ae="CTROOM", batch=batch,
            )  # fmt: skip
        instances_ingest(batch.messages)
        instances = [Instance.objects.get(storage_key=message["storage_key"]) for message in batch.messages]
        metadata_keep_task([instance.pk for instance in instances])
        return instances

    return ingest_objects


def _data_set_start(part10):
    """After the preamble, 'DICM' and the File Meta group, whose length its first element holds
    (PS3.10 7.1): a C-STORE carries the data set alone."""
    return 144 + int.from_bytes(part10[140:144], "little")


def uids(study=None, series=None, sop=None, **more):
    return {
        "StudyInstanceUID": study or generate_uid(), "SeriesInstanceUID": series or generate_uid(),
        "SOPInstanceUID": sop or generate_uid(), **more,
    }  # fmt: skip


@pytest.fixture
def key(actor):
    _, key = api_client_create(actor=actor, name="Viewer", scopes=["studies:read"], rate_limit=100_000)
    return key


@pytest.fixture
def web(live_server, key, settings):
    # dicomweb-client sends "Host: localhost" without the live server's port: BulkDataURIs take
    # the configured public address (as behind a proxy).
    settings.DICOMWEB_BASE_URL = f"{live_server.url}/dicomweb/"
    return DICOMwebClient(url=f"{live_server.url}/dicomweb", headers={"Authorization": f"Bearer {key}"})


def stored_bytes(instance):
    instance.refresh_from_db()
    return storage.object_get(instance.storage_key)


def addressed(instance):
    return (
        instance.series.study.study_instance_uid,
        instance.series.series_instance_uid,
        instance.sop_instance_uid,
    )


def test_a_study_comes_back_as_stored_byte_for_byte_in_series_and_instance_order(ingest, web):
    study, first, second = generate_uid(), generate_uid(), generate_uid()
    instances = ingest(  # arriving out of order, compressed and not
        ("CT_small.dcm", uids(study, second, SeriesNumber=2, InstanceNumber=1)),
        ("MR_small_jp2klossless.dcm", uids(study, first, SeriesNumber=1, InstanceNumber=2)),
        ("MR_small_RLE.dcm", uids(study, first, SeriesNumber=1, InstanceNumber=1)),
    )
    retrieved = web.retrieve_study(study, media_types=(("application/dicom", "*"),))
    expected = [instances[2], instances[1], instances[0]]
    assert [ds.SOPInstanceUID for ds in retrieved] == [i.sop_instance_uid for i in expected]
    assert [ds.buffer.getvalue() for ds in retrieved] == [stored_bytes(i) for i in expected]
    entry = AuditEntry.objects.get(action="retrieve", object_id=str(instances[0].series.study_id))
    assert entry.changes == {"what": [None, f"WADO-RS retrieve of study {study}"], "instances": [None, 3]}
    assert entry.channel == "api" and entry.actor == "Viewer"


def test_a_series_and_an_instance_as_stored(ingest, web):
    instance, other = ingest(("MR_small_jp2klossless.dcm", uids()), ("CT_small.dcm", uids()))
    study, series, sop = addressed(instance)
    [retrieved] = web.retrieve_series(study, series, media_types=(("application/dicom", "*"),))
    assert retrieved.buffer.getvalue() == stored_bytes(instance)
    one = web.retrieve_instance(study, series, sop, media_types=(("application/dicom", "*"),))
    assert one.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    assert one.buffer.getvalue() == stored_bytes(instance)


@pytest.mark.parametrize(
    "name", ["MR_small_jp2klossless.dcm", "SC_rgb_rle_2frame.dcm", "JPEG2000.dcm", "MR_small_implicit.dcm"]
)
def test_asking_for_explicit_little_endian_decompresses_to_pydicoms_own_decode(ingest, web, name):
    [instance] = ingest((name, uids()))
    original = pydicom.dcmread(get_testdata_file(name))
    retrieved = web.retrieve_instance(
        *addressed(instance), media_types=(("application/dicom", ExplicitVRLittleEndian),)
    )
    assert retrieved.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert retrieved.SOPInstanceUID == instance.sop_instance_uid
    assert numpy.array_equal(retrieved.pixel_array, original.pixel_array)


def test_without_a_transfer_syntax_a_series_comes_explicit_little_endian(ingest, web):
    """PS3.18 8.7.3.5.2: the default transfer syntax; dicomweb-client asks for no syntax."""
    [instance] = ingest(("MR_small_jp2klossless.dcm", uids()))
    study, series, _ = addressed(instance)
    [retrieved] = web.retrieve_series(study, series)
    assert retrieved.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    reference = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array
    assert numpy.array_equal(retrieved.pixel_array, reference)


def _same_attributes(web, metadata, stored):
    """Every attribute of the stored object but its pixel data (and group lengths, no attributes
    of the JSON model) as the metadata gives it: bulk data as fetched from its BulkDataURI."""
    parsed = pydicom.Dataset.from_json(metadata, bulk_data_uri_handler=lambda tag, vr, uri: None)
    for element in stored:
        if (
            element.tag in (0x7FE00010, 0xFFFCFFFC) or element.tag.element == 0
        ):  # (stored.py: not after pixels)
            continue
        attribute = metadata[f"{element.tag:08X}"]
        if "BulkDataURI" in attribute:
            assert web.retrieve_bulkdata(attribute["BulkDataURI"]) == [element.value], element
        else:
            assert parsed[element.tag].value == element.value, element


def test_series_metadata_is_the_files_attributes_with_pixel_data_as_bulk_data(ingest, web):
    series = generate_uid()
    study = generate_uid()
    instances = ingest(
        ("CT_small.dcm", uids(study, series, InstanceNumber=2)),
        ("CT_small.dcm", uids(study, series, InstanceNumber=1)),
    )
    metadata = web.retrieve_series_metadata(study, series)
    assert [m["00080018"]["Value"][0] for m in metadata] == [
        instances[1].sop_instance_uid, instances[0].sop_instance_uid,
    ]  # fmt: skip
    stored = pydicom.dcmread(io.BytesIO(stored_bytes(instances[1])))
    _same_attributes(web, metadata[0], stored)
    assert metadata[0]["00083002"] == {"vr": "UI", "Value": ["1.2.840.10008.1.2.1"]}
    pixel = metadata[0]["7FE00010"]
    assert pixel["vr"] == "OW" and "InlineBinary" not in pixel and "Value" not in pixel
    assert web.retrieve_bulkdata(pixel["BulkDataURI"]) == [stored.PixelData]


def test_instance_metadata_of_a_compressed_object_and_its_pixel_data_frames(ingest, web):
    [instance] = ingest(("SC_rgb_rle_2frame.dcm", uids()))
    metadata = web.retrieve_instance_metadata(*addressed(instance))
    _same_attributes(web, metadata, pydicom.dcmread(io.BytesIO(stored_bytes(instance))))
    original = pydicom.dcmread(get_testdata_file("SC_rgb_rle_2frame.dcm"))
    # As stored: one part a frame, its own media type; uncompressed: the frames decoded, in one.
    uri = metadata["7FE00010"]["BulkDataURI"]
    as_stored = web.retrieve_bulkdata(uri, media_types=(("image/dicom-rle", "1.2.840.10008.1.2.5"),))
    assert as_stored == list(generate_frames(original.PixelData, number_of_frames=2))
    [decoded] = web.retrieve_bulkdata(uri, media_types=("application/octet-stream",))
    assert decoded == original.pixel_array.tobytes()


def test_metadata_says_what_the_rewritten_header_says_once_linked(
    reference_data, ingest, web, actor, make_patient, queued
):
    [instance] = ingest(("CT_small.dcm", uids(PatientName="Nobody^Known", PatientID="X9")))
    study = instance.series.study
    patient = make_patient(name="Biscuit")
    study_link_manual(actor=actor, study=study, patient=patient, species_override=True)
    assert study_headers_rewrite(study_id=study.pk) == 1
    instance.refresh_from_db()
    kept = InstanceMetadata.objects.get(instance=instance)
    assert kept.storage_key == instance.storage_key  # kept by the rewrite itself, not on reading
    metadata = web.retrieve_instance_metadata(*addressed(instance))
    stored = pydicom.dcmread(io.BytesIO(stored_bytes(instance)))
    assert metadata["00100010"]["Value"][0]["Alphabetic"] == str(stored.PatientName)
    assert metadata["00100020"]["Value"] == [patient.patient_id]
    _same_attributes(web, metadata, stored)


def test_a_replacing_object_brings_its_own_metadata(ingest, web):
    sop, series, study = generate_uid(), generate_uid(), generate_uid()
    [first] = ingest(("CT_small.dcm", uids(study, series, sop, StudyDescription="First")))
    [second] = ingest(("CT_small.dcm", uids(study, series, sop, StudyDescription="Second")))
    assert second.pk == first.pk and second.version == 2
    assert InstanceMetadata.objects.get(instance=second).storage_key == second.storage_key
    metadata = web.retrieve_instance_metadata(study, series, sop)
    assert metadata["00081030"]["Value"] == ["Second"]


def test_metadata_of_a_series_is_one_query(ingest, django_assert_num_queries):
    series, study = generate_uid(), generate_uid()
    ingest(*[("CT_small.dcm", uids(study, series, InstanceNumber=n)) for n in range(1, 21)])
    with django_assert_num_queries(1):
        kept = instances_metadata(study_instance_uid=study, series_instance_uid=series)
    assert len(kept) == 20


def test_reindex_keeps_the_metadata_of_instances_indexed_before_it_was_kept(ingest):
    instances = ingest(("CT_small.dcm", uids()), ("MR_small_RLE.dcm", uids()))
    documents = dict(InstanceMetadata.objects.values_list("instance_id", "document"))
    InstanceMetadata.objects.all().delete()
    out = io.StringIO()
    call_command("reindex", "--metadata", stdout=out)
    assert "Metadata computed for 2 instances." in out.getvalue()
    assert dict(InstanceMetadata.objects.values_list("instance_id", "document")) == documents
    assert {i.pk for i in instances} == set(documents)


def test_frames_uncompressed_from_a_multi_frame_object_as_stored_and_decoded(ingest, web):
    native, compressed = ingest(("rtdose.dcm", uids()), ("SC_rgb_rle_2frame.dcm", uids()))
    frames = pydicom.dcmread(get_testdata_file("rtdose.dcm")).pixel_array
    got = web.retrieve_instance_frames(
        *addressed(native), frame_numbers=[3, 1], media_types=("application/octet-stream",)
    )
    assert got == [frames[2].tobytes(), frames[0].tobytes()]
    decoded = pydicom.dcmread(get_testdata_file("SC_rgb_rle_2frame.dcm")).pixel_array
    got = web.retrieve_instance_frames(
        *addressed(compressed), frame_numbers=[2], media_types=("application/octet-stream",)
    )
    assert got == [decoded[1].tobytes()]


def test_frames_in_their_stored_compressed_type(ingest, web):
    [instance] = ingest(("MR_small_jp2klossless.dcm", uids()))
    original = pydicom.dcmread(get_testdata_file("MR_small_jp2klossless.dcm"))
    got = web.retrieve_instance_frames(
        *addressed(instance), frame_numbers=[1], media_types=(("image/jp2", "1.2.840.10008.1.2.4.90"),)
    )
    assert got == list(generate_frames(original.PixelData, number_of_frames=1))


def _get(live_server, path, key=None, accept=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if accept:
        headers["Accept"] = accept
    return requests.get(f"{live_server.url}/dicomweb/{path}", headers=headers, timeout=30)


def test_errors_are_json_naming_what_was_wrong(ingest, live_server, key, actor):
    [instance] = ingest(("CT_small.dcm", uids()))
    study, series, sop = addressed(instance)
    at = f"studies/{study}/series/{series}/instances/{sop}"
    unknown = generate_uid()
    response = _get(live_server, f"studies/{unknown}/metadata", key)
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "not_found", "message": f"No study {unknown}."}
    assert _get(live_server, f"studies/{study}/series/{unknown}", key).status_code == 404
    response = _get(live_server, f"{at}/frames/2", key)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Frame 2 is out of range: the instance has 1 frame(s)."
    response = _get(live_server, f"{at}/frames/0,x", key)
    assert response.status_code == 400 and "frames" in response.json()["error"]["fields"]
    response = _get(live_server, f"studies/not-a-uid/series/{series}", key)
    assert response.status_code == 400 and "study" in response.json()["error"]["fields"]
    response = _get(
        live_server,
        at,
        key,
        accept='multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90',
    )
    assert response.status_code == 406 and response.json()["error"]["code"] == "not_acceptable"
    assert _get(live_server, f"{at}/bulkdata/00100010", key).status_code == 404  # text, no bulk data
    response = _get(live_server, at)
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"
    _, other = api_client_create(actor=actor, name="PMS", scopes=["patients:read"])
    response = _get(live_server, f"studies/{study}/metadata", other)
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This API client has no 'studies:read' scope."
    assert not AuditEntry.objects.filter(action="retrieve").exists()  # none of these retrieved anything


def test_a_missing_or_stale_document_is_computed_when_read_and_kept(ingest):
    first, second = ingest(("CT_small.dcm", uids()), ("MR_small_RLE.dcm", uids()))
    documents = dict(InstanceMetadata.objects.values_list("instance_id", "document"))
    InstanceMetadata.objects.filter(instance=first).delete()
    InstanceMetadata.objects.filter(instance=second).update(
        storage_key="dicom/an/older/object.dcm", document="{}"
    )
    for instance in (first, second):
        study, series, sop = addressed(instance)
        [kept] = instances_metadata(
            study_instance_uid=study, series_instance_uid=series, sop_instance_uid=sop
        )
        assert kept.document == documents[instance.pk]
    assert dict(InstanceMetadata.objects.values_list("instance_id", "document")) == documents
    assert set(InstanceMetadata.objects.values_list("storage_key", flat=True)) == {
        first.storage_key, second.storage_key,
    }  # fmt: skip


def test_a_staff_session_reads_metadata_like_a_viewer_in_the_browser(reference_data, ingest, staff, client):
    [instance] = ingest(("CT_small.dcm", uids()))
    study, series, sop = addressed(instance)
    client.force_login(staff["veterinarian"])
    response = client.get(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/metadata")
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom+json"
    assert response.json()[0]["00080018"]["Value"] == [sop]
    entry = AuditEntry.objects.get(action="retrieve")
    assert (entry.channel, entry.user) == ("api", staff["veterinarian"])


MPEG4 = "1.2.840.10008.1.2.4.102"  # MPEG-4 AVC/H.264 High Profile / Level 4.1
VIDEO_ENDOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.1.1"


def mpeg4_video(frames=30):
    """A Video Endoscopic Image of ``frames`` frames whose pixel data is an MPEG-4 "bitstream"
    in three fragments (not a real one: nothing here decodes it, PS3.18 sends it as it is)."""
    bitstream = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 12  # 3084 bytes: 3 even fragments
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = MPEG4
    ds.SOPClassUID, ds.SOPInstanceUID = VIDEO_ENDOSCOPIC, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "PX-VIDEO", "HARTLEY^BISCUIT", "ES"
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.SamplesPerPixel = 64, 64, frames, 3
    ds.PhotometricInterpretation, ds.PlanarConfiguration = "YBR_PARTIAL_420", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([bitstream], fragments_per_frame=3)
    ds["PixelData"].VR = "OB"
    return ds, bitstream


def test_a_video_s_frames_are_its_whole_bitstream_in_its_own_media_type(ingest, web, live_server, key):
    ds, bitstream = mpeg4_video()
    [instance] = ingest((ds, {}))
    study, series, sop = addressed(instance)
    at = f"studies/{study}/series/{series}/instances/{sop}"

    assert web.retrieve_instance_frames(study, series, sop, [1], media_types=("video/mp4",)) == [bitstream]
    response = _get(live_server, f"{at}/frames/1,30", key)  # no Accept: as stored, one part
    assert response.status_code == 200
    assert 'type="video/mp4"' in response.headers["Content-Type"]
    assert f"Content-Type: video/mp4; transfer-syntax={MPEG4}".encode() in response.content
    assert response.content.count(bitstream) == 1
    assert _get(live_server, f"{at}/frames/31", key, accept="video/mp4").status_code == 404
    refused = _get(
        live_server, f"{at}/frames/1", key, accept='multipart/related; type="application/octet-stream"'
    )
    assert refused.status_code == 406 and "ask for video/mp4" in refused.json()["error"]["message"]
    # The pixel data's bulk data too; and the instance, as stored when no syntax is asked for.
    bulk = _get(live_server, f"{at}/bulkdata/7FE00010", key)
    assert bulk.status_code == 200 and bulk.content.count(bitstream) == 1
    retrieved = web.retrieve_instance(study, series, sop)
    assert retrieved.file_meta.TransferSyntaxUID == MPEG4
    assert retrieved.buffer.getvalue() == stored_bytes(instance)
    explicit = f'multipart/related; type="application/dicom"; transfer-syntax={ExplicitVRLittleEndian}'
    assert _get(live_server, at, key, accept=explicit).status_code == 406  # asked for by name: not decoded


def test_a_video_is_rendered_as_itself_and_a_still_picture_of_it_is_a_406(ingest, live_server, key):
    ds, bitstream = mpeg4_video()
    [instance] = ingest((ds, {}))
    study, series, sop = addressed(instance)
    at = f"studies/{study}/series/{series}/instances/{sop}"

    for path in (f"{at}/rendered", f"{at}/frames/2/rendered"):
        response = _get(live_server, path, key)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "video/mp4" and response.content == bitstream
    assert _get(live_server, f"{at}/rendered", key, accept="video/*").content == bitstream
    refused = _get(live_server, f"{at}/rendered", key, accept="image/jpeg")
    assert refused.status_code == 406 and "rendered as video/mp4 only" in refused.json()["error"]["message"]
    assert _get(live_server, f"{at}/frames/31/rendered", key).status_code == 404


def test_attributes_after_the_pixel_data_are_in_the_metadata_and_the_retrieve(ingest, web, live_server, key):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.add_new(0x7FE10010, "LO", "ACME VET")  # a private block after the pixel data (PS3.5 7.8.1)
    ds.add_new(0x7FE11001, "OB", b"\x05" * 2000)
    ds.add_new(0x7FE11002, "LO", "after the pixels")
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * 16)  # Data Set Trailing Padding (PS3.10 7.2)
    [instance] = ingest((ds, uids()))
    study, series, sop = addressed(instance)

    metadata = web.retrieve_instance_metadata(study, series, sop)

    assert metadata["7FE11002"] == {"vr": "LO", "Value": ["after the pixels"]}
    assert metadata["7FE10010"] == {"vr": "LO", "Value": ["ACME VET"]}
    assert metadata["FFFCFFFC"] == {"vr": "OB", "InlineBinary": "AAAAAAAAAAAAAAAAAAAAAA=="}
    assert metadata["7FE00010"]["BulkDataURI"].endswith(f"/instances/{sop}/bulkdata/7FE00010")
    assert web.retrieve_bulkdata(
        metadata["7FE11001"]["BulkDataURI"], media_types=("application/octet-stream",)
    ) == [b"\x05" * 2000]
    # Retrieved as stored, and converted (to Implicit VR Little Endian): they are there.
    as_stored = web.retrieve_instance(study, series, sop, media_types=(("application/dicom", "*"),))
    response = _get(live_server, f"studies/{study}/series/{series}/instances/{sop}", key,
                    accept='multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2')  # fmt: skip
    [(headers, body)] = multipart(response)
    implicit = pydicom.dcmread(io.BytesIO(body))
    assert headers["Content-Type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2"
    assert implicit.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    for retrieved in (as_stored, implicit):
        assert retrieved[0x7FE11002].value in ("after the pixels", b"after the pixels")
        assert retrieved[0xFFFCFFFC].value == b"\x00" * 16
