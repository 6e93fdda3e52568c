"""How often DICOMweb may be called (integrations/dicomweb/base.py DicomWebRateThrottle): a
viewer loading a study frame by frame is never stopped at the REST API's per-client rate, and a
client past the DICOMweb rate gets a 429 in the API's error shape with Retry-After."""

import numpy
import pytest
import requests
from dicomweb_client import DICOMwebClient
from django.core.cache import cache
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from integrations.api.clients import api_client_create
from tests.test_dicomweb_wado import addressed, ingest  # noqa: F401  # ingest: a fixture

pytestmark = pytest.mark.django_db(transaction=True)
MULTI_FRAME_GRAYSCALE_BYTE_SC = "1.2.840.10008.5.1.4.1.1.7.2"


def multi_frame(frames, rows=8, columns=8):
    """A Multi-frame Grayscale Byte SC image whose frame n holds the value n % 256 throughout."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = MULTI_FRAME_GRAYSCALE_BYTE_SC
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (
        generate_uid(),
        generate_uid(),
        generate_uid(),
    )
    ds.PatientID, ds.PatientName, ds.Modality = "PX-RATE", "HARTLEY^BISCUIT", "OT"
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.SamplesPerPixel = rows, columns, frames, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    pixels = numpy.repeat(numpy.arange(1, frames + 1) % 256, rows * columns).astype(numpy.uint8)
    ds.PixelData = pixels.tobytes()
    return ds


def test_a_viewer_loads_700_frames_one_request_each_whatever_its_rest_api_rate(
    ingest,  # noqa: F811
    live_server,
    actor,
):
    # Its REST rate, 100 a minute, would stop it at the 101st request within a minute (it makes
    # them many times faster than that): DICOMweb's own rate is what applies here.
    cache.clear()
    _, key = api_client_create(actor=actor, name="Viewer", scopes=["studies:read"], rate_limit=100)
    [instance] = ingest((multi_frame(700), {}))
    web = DICOMwebClient(url=f"{live_server.url}/dicomweb", headers={"Authorization": f"Bearer {key}"})
    study, series, sop = addressed(instance)

    for number in range(1, 701):  # as a viewer scrolls a 700-slice stack: one frame a request
        [frame] = web.retrieve_instance_frames(
            study, series, sop, [number], media_types=("application/octet-stream",)
        )
        assert frame == bytes([number % 256]) * 64


def test_past_the_dicomweb_rate_a_client_gets_429_with_a_json_body_and_retry_after(
    ingest,  # noqa: F811
    live_server,
    actor,
    settings,
):
    cache.clear()
    settings.DICOMWEB_RATE_LIMIT = 3
    _, key = api_client_create(actor=actor, name="Runaway", scopes=["studies:read"], rate_limit=3)
    [instance] = ingest((multi_frame(2), {}))
    study, series, sop = addressed(instance)
    url = f"{live_server.url}/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/1"
    headers = {"Authorization": f"Bearer {key}"}

    statuses = [requests.get(url, headers=headers, timeout=30).status_code for _ in range(3)]
    refused = requests.get(url, headers=headers, timeout=30)

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    # Counted apart from the REST API's requests: the client's REST calls still go through.
    rest = requests.get(f"{live_server.url}/api/v1/studies", headers=headers, timeout=30)
    assert rest.status_code == 200


def test_the_client_s_own_rate_applies_to_dicomweb_when_it_is_higher(ingest, live_server, actor, settings):  # noqa: F811
    cache.clear()
    settings.DICOMWEB_RATE_LIMIT = 2
    _, key = api_client_create(actor=actor, name="Big viewer", scopes=["studies:read"], rate_limit=5)
    [instance] = ingest((multi_frame(1), {}))
    study, series, sop = addressed(instance)
    url = f"{live_server.url}/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/1"
    headers = {"Authorization": f"Bearer {key}"}
    assert [requests.get(url, headers=headers, timeout=30).status_code for _ in range(6)] == [200] * 5 + [429]


def test_a_staff_session_is_not_limited(ingest, live_server, settings, reference_data, staff):  # noqa: F811
    from tests.conftest import PASSWORD

    cache.clear()
    settings.DICOMWEB_RATE_LIMIT = 3  # what would stop an API client after three
    [instance] = ingest((multi_frame(20), {}))
    study, series, sop = addressed(instance)
    site = live_server.url.replace("localhost", "127.0.0.1")  # (a cookie jar keeps no cookie for "localhost")
    session = requests.Session()
    login = session.get(f"{site}/login/")
    session.post(login.url, data={"username": "radiologist", "password": PASSWORD,
                 "csrfmiddlewaretoken": session.cookies["csrftoken"]})  # fmt: skip
    url = f"{site}/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames"
    assert [session.get(f"{url}/{number}", timeout=30).status_code for number in range(1, 21)] == [200] * 20
