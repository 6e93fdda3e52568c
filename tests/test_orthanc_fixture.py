"""The Orthanc fixture (tests/orthanc.py) works: what the interop tests and the archive benchmark
take from it is checked here against Orthanc itself, with dcmtk and pynetdicom as the peers.

- an image sent with dcmtk's storescu comes back through its REST API with the same data set,
  and its DICOMweb plugin (QIDO-RS, WADO-RS) answers for it;
- a node registered as a peer is one Orthanc queries through ``/modalities/{id}/query`` and
  retrieves from through ``/queries/{id}/retrieve`` (a pynetdicom C-FIND and C-MOVE SCP here;
  the VetPACS listener in the interop tests);
- two of them at once do not share ports or storage.
"""

import json
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)

from tests.conftest import tool_required

STORESCU = "/usr/bin/storescu"  # .venv/bin has pynetdicom's storescu under the same name
CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


def storescu(port, called, path):
    done = subprocess.run(
        [tool_required(STORESCU), "-aet", "FIXTURETEST", "-aec", called, "127.0.0.1", str(port), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def test_an_image_stored_with_storescu_comes_back_through_its_rest_api_and_dicomweb(orthanc_start):
    orthanc = orthanc_start()
    sent = pydicom.dcmread(CT_SMALL)

    code, output = storescu(orthanc.dicom_port, orthanc.aet, CT_SMALL)

    assert code == 0, output
    assert orthanc.count() == 1
    [instance] = orthanc.get("/instances")
    status, _, body = orthanc.request("GET", f"/instances/{instance}/file")
    assert status == 200
    kept = pydicom.dcmread(pydicom.filebase.DicomBytesIO(body))
    assert kept.SOPInstanceUID == sent.SOPInstanceUID
    assert kept.PixelData == sent.PixelData
    assert kept.PatientName == sent.PatientName
    # The DICOMweb plugin is loaded: QIDO-RS finds the study, WADO-RS gives its metadata.
    status, headers, body = orthanc.request(
        "GET", f"/dicom-web/studies?PatientID={sent.PatientID}", headers={"Accept": "application/dicom+json"}
    )
    assert status == 200, body[:500]
    [study] = json.loads(body)
    assert study["0020000D"]["Value"] == [sent.StudyInstanceUID]
    status, _, body = orthanc.request(
        "GET",
        f"/dicom-web/studies/{sent.StudyInstanceUID}/series/{sent.SeriesInstanceUID}/metadata",
        headers={"Accept": "application/dicom+json"},
    )
    assert status == 200, body[:500]
    assert b'"00080018"' in body and sent.SOPInstanceUID.encode() in body


@pytest.fixture
def peer_scp():
    """A pynetdicom Study Root C-FIND and C-MOVE SCP on a free port, holding one study: CT_small.
    It answers that study to any C-FIND and sends it to ``server.destination`` (host, port) on a
    C-MOVE; the identifiers it was asked and the move destinations named are kept."""
    study = pydicom.dcmread(CT_SMALL)
    asked, moved = [], []

    def on_find(event):
        asked.append(event.identifier)
        answer = Dataset()
        answer.QueryRetrieveLevel = "STUDY"
        answer.StudyInstanceUID = study.StudyInstanceUID
        answer.PatientName = "Hartley^Biscuit"
        answer.PatientID = "P000001"
        answer.StudyDate = "20261123"
        yield 0xFF00, answer

    def on_move(event):
        moved.append(event.move_destination)
        yield server.destination
        yield 1
        yield 0xFF00, study

    ae = AE(ae_title="PEERSCP")
    ae.require_called_aet = True  # Orthanc must call it by the AE title it was registered with
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
    ae.add_requested_context(CTImageStorage)
    handlers = [(evt.EVT_C_FIND, on_find), (evt.EVT_C_MOVE, on_move)]
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    server.asked, server.moved, server.study, server.destination = asked, moved, study, None
    yield server
    server.shutdown()


def test_a_registered_peer_is_queried_through_the_rest_api(orthanc_start, peer_scp):
    port = peer_scp.server_address[1]
    orthanc = orthanc_start(peers={"peer": ("PEERSCP", "127.0.0.1", port)})

    assert orthanc.get("/modalities") == ["peer"]
    query_id, answers = orthanc.query("peer", "Study", {"PatientName": "Hart*", "StudyDate": ""})

    assert query_id
    [asked] = peer_scp.asked
    assert (asked.PatientName, asked.QueryRetrieveLevel) == ("Hart*", "STUDY")
    [answer] = answers
    assert answer["StudyInstanceUID"] == peer_scp.study.StudyInstanceUID
    assert answer["PatientName"] == "Hartley^Biscuit"


def test_what_a_query_found_is_retrieved_into_it_by_c_move(orthanc_start, peer_scp):
    orthanc = orthanc_start(peers={"peer": ("PEERSCP", "127.0.0.1", peer_scp.server_address[1])})
    peer_scp.destination = ("127.0.0.1", orthanc.dicom_port)
    query_id, _ = orthanc.query("peer", "Study", {"PatientID": "P000001"})

    orthanc.retrieve(query_id)

    assert peer_scp.moved == [orthanc.aet]
    [instance] = orthanc.get("/instances")
    tags = orthanc.get(f"/instances/{instance}/simplified-tags")
    assert tags["SOPInstanceUID"] == peer_scp.study.SOPInstanceUID


def test_two_of_them_run_side_by_side_on_their_own_ports_and_storage(orthanc_start):
    first, second = orthanc_start(aet="FIRST"), orthanc_start(aet="SECOND")

    code, output = storescu(first.dicom_port, "FIRST", CT_SMALL)

    assert code == 0, output
    assert {first.dicom_port, first.http_port}.isdisjoint({second.dicom_port, second.http_port})
    assert (first.count(), second.count()) == (1, 0)
    assert first.get("/system")["DicomAet"] == "FIRST"
