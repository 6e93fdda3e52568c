"""The DICOM adapter's own decisions: the fast path is there when DICOM_FAST_PATH says so and
not otherwise, it refuses a pynetdicom it was not written for, and each reason a service gives
for a refusal becomes the status of the standard (PS3.4 B.2.3, F.7.2.1.4, F.7.2.2.4)."""

import pytest
from pynetdicom import AE, _config, evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.sop_class import Verification

from imaging.dicom.net import handlers
from imaging.dicom.net.ae import ae_build, server_start
from imaging.dicom.net.replies import status_with_comment
from imaging.dicom.records import status
from imaging.ingest.receive import Refusal
from imaging.orders.mpps import StepRefusal


@pytest.fixture
def echoed(settings):
    """Start our node in this process (fast or not), C-ECHO it once; returns what the
    association's DIMSE provider was, seen from the C-ECHO handler, and pynetdicom's setting."""
    settings.DICOM_ALLOW_ANY_AE = True
    servers = []

    def echo(*, fast):
        ae = ae_build(ae_title="VETPACS", max_pdu=65536, fast=fast)
        server = server_start(ae, ("127.0.0.1", 0), fast=fast)
        servers.append(ae)
        seen = []
        server.bind(evt.EVT_C_ECHO, lambda event: seen.append(type(event.assoc.dimse)) or 0x0000)
        scu = AE(ae_title="ECHOSCU")
        scu.add_requested_context(Verification)
        assoc = scu.associate("127.0.0.1", server.server_address[1], ae_title="VETPACS")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()
        return seen[0], _config.STORE_RECV_CHUNKED_DATASET

    yield echo
    for ae in servers:
        ae.shutdown()
    _config.STORE_RECV_CHUNKED_DATASET = False


def test_with_the_fast_path_off_the_association_is_plain_pynetdicom(echoed):
    dimse, chunked = echoed(fast=False)
    assert dimse is DIMSEServiceProvider
    assert chunked  # C-STORE data sets go to a file (event.dataset_path), not memory


def test_with_the_fast_path_on_the_association_has_its_dimse_provider(echoed):
    from imaging.dicom.net.fast.dimse import FastDIMSE

    dimse, chunked = echoed(fast=True)
    assert dimse is FastDIMSE
    assert not chunked  # the fast path reads data sets its own way


def test_the_fast_path_refuses_a_pynetdicom_it_was_not_written_for():
    from imaging.dicom.net.fast import UnsupportedPynetdicom, version_check

    version_check("3.0.4")
    with pytest.raises(UnsupportedPynetdicom) as refused:
        version_check("3.1.0")
    message = str(refused.value)
    assert "pynetdicom 3.0.4" in message and "3.1.0 is" in message and "DICOM_FAST_PATH=false" in message


@pytest.mark.parametrize(
    "reason, code",
    [
        (Refusal.DOES_NOT_MATCH, 0xA900),  # Error: data set does not match SOP class
        (Refusal.UNREADABLE, 0xC000),  # Error: cannot understand
        (Refusal.OUT_OF_RESOURCES, 0xA700),  # Refused: out of resources
    ],
)
def test_each_refusal_of_an_object_is_its_c_store_status(reason, code):
    assert handlers.STORE_STATUS[reason] == code
    answer = status_with_comment(handlers.STORE_STATUS[reason], "Malformed data set: \\ " + "x" * 100)
    assert answer.Status == code
    assert answer.ErrorComment.startswith("Malformed data set: ? x")  # no backslash in LO
    assert len(answer.ErrorComment) == 64  # LO (PS3.7 C.4)


def test_every_refusal_has_a_status():
    assert set(handlers.STORE_STATUS) == set(Refusal)
    assert set(handlers.STEP_STATUS) == set(StepRefusal)


@pytest.mark.parametrize(
    "reason, code",
    [
        (StepRefusal.ALREADY_EXISTS, status.DUPLICATE_SOP_INSTANCE),
        (StepRefusal.NO_SUCH_STEP, status.NO_SUCH_OBJECT_INSTANCE),
        (StepRefusal.MISSING_ATTRIBUTE, status.MISSING_ATTRIBUTE),
        (StepRefusal.INVALID_ATTRIBUTE_VALUE, status.INVALID_ATTRIBUTE_VALUE),
        (StepRefusal.FINAL, status.PROCESSING_FAILURE),
    ],
)
def test_each_refusal_of_a_procedure_step_is_its_mpps_status(reason, code):
    assert handlers.STEP_STATUS[reason] == code


def test_the_listener_says_when_it_runs_plain_pynetdicom(dicom_listener_start):
    plain = dicom_listener_start(DICOM_FAST_PATH="false")
    fast = dicom_listener_start(DICOM_FAST_PATH="true")
    assert "plain pynetdicom (DICOM_FAST_PATH=false)" in plain.log.read_text()
    assert "plain pynetdicom" not in fast.log.read_text()
