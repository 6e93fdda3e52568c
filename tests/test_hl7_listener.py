"""The HL7 listener on a real socket: ACKs, the database, and what bad input gets."""

import signal
import socket
import ssl
import subprocess
import sys
import types

import pytest
from django.db import connection

from integrations.hl7.mllp import END, START, frame
from integrations.models import HL7HeldOrder, HL7Message
from patients.models import CodeMapping, Owner, Patient, PatientExternalId
from tests import hl7_samples as samples
from tests.conftest import ROOT, free_port, tool_required, wait_for


@pytest.fixture
def hl7_listener_start(process_env, reference_data, tmp_path):
    started = []

    def start(**env):
        port = free_port()
        log = tmp_path / f"hl7-{port}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "hl7_listener", "--bind", "127.0.0.1", "--port", str(port)],
                cwd=ROOT, env={**process_env, "HL7_MAX_MESSAGE_BYTES": str(1024 * 1024), **env},
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append((process, log))
        wait_for(
            lambda: "HL7 listener on" in log.read_text() or process.poll() is not None,
            timeout=30,
            message="the HL7 listener",
        )
        assert process.poll() is None, log.read_text()
        return types.SimpleNamespace(port=port, process=process, log=log)

    yield start
    for process, log in started:
        process.terminate()
        process.wait(timeout=30)
        print(log.read_text()[-3000:])


@pytest.fixture
def hl7_listener(hl7_listener_start):
    return hl7_listener_start()


class Client:
    def __init__(self, port, tls=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        if tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # a self-signed test cert
            self.sock = context.wrap_socket(self.sock)
        self.buffer = b""

    def send(self, message, *, raw=False):
        self.sock.sendall(message if raw else frame(message.encode()))

    def ack(self):
        while END not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buffer += data
        reply, _, self.buffer = self.buffer.partition(END)
        assert reply.startswith(START)
        segments = reply[1:].decode().strip("\r").split("\r")
        return {s[:3]: s.split("|") for s in segments}

    def closed(self):
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def test_an_a04_registers_the_animal_and_its_owner_and_is_acked_aa(hl7_listener):
    client = Client(hl7_listener.port)
    client.send(samples.adt("A04", "MSG0001"))
    ack = client.ack()
    assert ack["MSA"][1:3] == ["AA", "MSG0001"]
    assert ack["MSH"][8] == "ACK^A04^ACK" and ack["MSH"][11] == "2.5.1"
    patient = Patient.objects.get(external_ids__system="hl7:VETPMS", external_ids__value="PMS-1001")
    assert (patient.name, patient.species.code, patient.breed.code, patient.sex) == (
        "Biscuit",
        "448771007",
        "62137007",
        "M",
    )
    assert str(patient.birth_date) == "2019-04-02"
    assert str(patient.current_weight) == "31.400"
    owner = patient.primary_owner
    assert (owner.family_name, owner.given_name, owner.city, owner.phone) == (
        "Hartley",
        "Jane",
        "Ashford",
        "01632960123",
    )
    message = HL7Message.objects.get()
    assert (message.status, message.ack_code, message.message_type) == ("processed", "AA", "ADT^A04")


def test_many_messages_on_one_connection_and_an_a08_updates(hl7_listener):
    client = Client(hl7_listener.port)
    client.send(samples.adt("A04", "M1"))
    assert client.ack()["MSA"][1] == "AA"
    client.send(samples.adt("A08", "M2", version="2.3.1", name="Hartley^Biscuit II", born="20190403"))
    ack = client.ack()
    assert ack["MSA"][1:3] == ["AA", "M2"] and ack["MSH"][11] == "2.3.1"
    patient = Patient.objects.get()
    assert (patient.name, str(patient.birth_date)) == ("Biscuit II", "2019-04-03")
    assert Owner.objects.count() == 1  # the same account (PID-18): the same owner


def test_the_same_message_again_gets_the_first_ack_and_another_under_its_control_id_is_applied(hl7_listener):
    client = Client(hl7_listener.port)
    client.send(samples.adt("A04", "SAME"))
    first = client.ack()
    client.send(samples.adt("A04", "SAME"))
    assert client.ack() == first
    assert HL7Message.objects.get().repeats == 1
    client.send(samples.adt("A08", "SAME", name="Hartley^Changed"))  # other content: not a repeat
    assert client.ack()["MSA"][1:3] == ["AA", "SAME"]
    assert Patient.objects.get().name == "Changed"
    assert HL7Message.objects.count() == 2


@pytest.mark.parametrize("version", ["2.3.1", "2.5.1"])
def test_a40_merges_the_duplicate(hl7_listener, version):
    client = Client(hl7_listener.port)
    client.send(samples.adt("A04", "R1", version=version))
    client.send(samples.adt("A04", "R2", version=version, pms_id="PMS-1002", account="ACC-78", visit="V-556"))
    assert client.ack()["MSA"][1] == client.ack()["MSA"][1] == "AA"
    client.send(samples.a40("R3", version=version))
    assert client.ack()["MSA"][1] == "AA"
    survivor = Patient.objects.get(external_ids__value="PMS-1001")
    assert set(survivor.external_ids.values_list("value", flat=True)) == {"PMS-1001", "PMS-1002"}
    assert Patient.objects.filter(merged_into=survivor).count() == 1


@pytest.mark.parametrize(
    "message, code, err_location, text",
    [
        (samples.adt("A04", "B1", pms_id=""), "AE", "PID^1^3", "PID-3"),
        (samples.adt("A04", "B2", born="2019-04-02"), "AE", "PID^1^7", "not a date"),
        (samples.adt("A04", "B3", species=""), "AE", "PID^1^35", "PID-35 (species) is required"),
        (samples.adt("A04", "B4", version="2.1"), "AR", "MSH^1^12", "Version 2.1"),
        (samples.adt("A04", "B5").replace("ADT^A04", "ADT^A99"), "AR", "MSH^1^9", "ADT A99 is not accepted"),
        (samples.adt("A04", "B6").replace("ADT^A04", "SIU^S12"), "AR", "MSH^1^9", "SIU S12 is not accepted"),
    ],
)  # fmt: skip
def test_bad_input_gets_the_right_ack_and_changes_nothing(hl7_listener, message, code, err_location, text):
    client = Client(hl7_listener.port)
    client.send(message)
    ack = client.ack()
    assert ack["MSA"][1] == code
    assert text in ack["MSA"][3]
    assert ack["ERR"][2] == err_location
    assert ack["ERR"][8] == text or text in ack["ERR"][8]
    assert (
        not Patient.objects.exists() and not Owner.objects.exists() and not PatientExternalId.objects.exists()
    )
    logged = HL7Message.objects.get()
    assert logged.status == ("error" if code == "AE" else "rejected") and text in logged.error


def test_garbage_closes_the_connection_and_a_cut_frame_is_dropped(hl7_listener):
    client = Client(hl7_listener.port)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", raw=True)
    assert client.closed()
    client = Client(hl7_listener.port)
    client.send(frame(samples.adt("A04", "CUT").encode())[:-40], raw=True)
    client.sock.close()
    client = Client(hl7_listener.port)  # the listener is still there
    client.send(samples.adt("A04", "AFTER"))
    assert client.ack()["MSA"][1] == "AA"
    assert list(HL7Message.objects.values_list("control_id", flat=True)) == ["AFTER"]


def test_a_message_over_the_limit_is_refused_and_not_kept_whole(hl7_listener):
    client = Client(hl7_listener.port)
    huge = samples.adt("A04", "BIG") + "NTE|1||" + "x" * (10 * 1024 * 1024) + "\r"
    client.send(huge)
    ack = client.ack()
    assert ack["MSA"][1:3] == ["AR", "BIG"]
    assert "limit" in ack["MSA"][3]
    assert not Patient.objects.exists()
    assert len(HL7Message.objects.get().raw) < 10_000
    client.send(samples.adt("A04", "SMALL"))  # the same connection still works
    assert client.ack()["MSA"][1] == "AA"


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a SQLite file has no server connection to lose"
)
def test_a_database_connection_lost_between_messages_is_replaced_and_the_message_handled(hl7_listener_start):
    # One thread: the second message is handled on the connection the first one used (with
    # more, a thread not yet started could take it on a new connection, and nothing be lost).
    hl7_listener = hl7_listener_start(HL7_THREADS="1")
    client = Client(hl7_listener.port)
    client.send(samples.adt("A04", "L1"))
    assert client.ack()["MSA"][1] == "AA"
    with connection.cursor() as cursor:  # as a restart of PostgreSQL would; waits until they are gone
        cursor.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    client.send(samples.adt("A08", "L2", name="Hartley^Biscuit II"))
    assert client.ack()["MSA"][1:3] == ["AA", "L2"]
    assert Patient.objects.get().name == "Biscuit II"
    assert "trying again on a new database connection" in hl7_listener.log.read_text()


def test_concurrent_senders(hl7_listener):
    clients = [Client(hl7_listener.port) for _ in range(4)]
    for i, client in enumerate(clients):
        for j in range(5):
            client.send(
                samples.adt(
                    "A04", f"C{i}-{j}", pms_id=f"PMS-{i}-{j}", account=f"ACC-{i}-{j}", visit=f"V-{i}-{j}"
                )
            )
    for client in clients:
        assert [client.ack()["MSA"][1] for _ in range(5)] == ["AA"] * 5
    assert Patient.objects.count() == 20


@pytest.mark.parametrize("message_type, version", [("ORM^O01", "2.3.1"), ("OMI^O23^OMI_O23", "2.5.1")])
def test_an_order_goes_into_the_worklist_and_can_be_changed_and_cancelled(
    hl7_listener, stations, message_type, version
):
    from pydicom.dataset import Dataset

    from imaging.models import ImagingOrder
    from imaging.orders.worklist import worklist_items

    client = Client(hl7_listener.port)
    client.send(samples.order("O1", message_type=message_type, version=version))
    assert client.ack()["MSA"][1:3] == ["AA", "O1"]
    order = ImagingOrder.objects.get()
    assert (order.procedure.code, order.placer_order_number, order.station.ae_title) == (
        "DX-THX2",
        "ORD-1",
        "DRROOM",
    )
    assert order.scheduled_start.isoformat() == "2026-11-23T14:30:00+00:00"
    assert (order.referring_vet, order.reason) == ("Okafor^Ada", "Cough Coughing two weeks")
    assert order.patient.external_ids.get().value == "PMS-1001"
    query = Dataset()
    query.AccessionNumber = order.accession_number
    assert list(worklist_items(identifier=query)) == [order]

    client.send(
        samples.order("O2", control="XO", when="20261124090000", message_type=message_type, version=version)
    )
    assert client.ack()["MSA"][1] == "AA"
    order.refresh_from_db()
    assert order.scheduled_start.isoformat() == "2026-11-24T09:00:00+00:00"
    client.send(samples.order("O3", control="CA", message_type=message_type, version=version))
    assert client.ack()["MSA"][1] == "AA"
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert ImagingOrder.objects.count() == 1


def test_a_pms_in_v23_registers_an_animal_and_orders_with_its_own_codes(hl7_listener, stations):
    """As an open-source PMS sends them: the id in PID-2, the owner only in PID, its own
    species, breed and service codes, OBR-6; a code it has not mapped yet waits."""
    from imaging.models import ImagingOrder, Procedure

    client = Client(hl7_listener.port)
    client.send(samples.pms_adt("A04", "1"))
    ack = client.ack()
    assert (ack["MSA"][1:3], ack["MSH"][8], ack["MSH"][11]) == (["AA", "1"], "ACK^A04", "2.3")
    patient = Patient.objects.get(external_ids__system="hl7:OpenVPMS", external_ids__value="1001")
    assert (patient.species.name, patient.breed.name) == ("Canine", "Labrador Retriever")
    assert patient.primary_owner.family_name == "Bar"
    client.send(samples.pms_order("2", service="XRAY-HIPS^Hip dysplasia screening^OpenVPMS"))
    assert client.ack()["MSA"][1:3] == ["AA", "2"]
    assert HL7HeldOrder.objects.get().placer_order_number == "5001" and not ImagingOrder.objects.exists()
    thorax = Procedure.objects.get(code="DX-THX2")
    CodeMapping.objects.create(system="OpenVPMS", kind="procedure", external_code="RADTHX", procedure=thorax)
    client.send(samples.pms_order("3", placer="5002"))
    assert client.ack()["MSA"][1:3] == ["AA", "3"]
    order = ImagingOrder.objects.get()
    assert (order.placer_order_number, order.procedure.code, order.scheduled_start.isoformat()) == (
        "5002", "DX-THX2", "2026-11-23T14:30:00+00:00",
    )  # fmt: skip
    assert order.patient == patient


def test_a_message_without_control_id_is_applied_once_over_the_wire(hl7_listener):
    client = Client(hl7_listener.port)
    client.send(samples.pms_adt("A04", "", species="448771007^Canis lupus familiaris^SCT", breed=""))
    first = client.ack()
    assert first["MSA"][1:3] == ["AA", ""]
    client.send(samples.pms_adt("A04", "", species="448771007^Canis lupus familiaris^SCT", breed=""))
    assert client.ack() == first
    assert (Patient.objects.count(), HL7Message.objects.get().repeats) == (1, 1)


def test_the_worklist_names_the_breed_of_an_animal_the_pms_registered(hl7_listener, dicom_listener, stations,
                                                                      tmp_path):  # fmt: skip
    """findscu -W, as a DR room asks, gets Patient Breed Description with the coded breed
    (it was always empty when the breed had a code)."""
    from pydicom import dcmread

    from imaging.models import ImagingOrder

    tool_required("/usr/bin/findscu")
    client = Client(hl7_listener.port)
    client.send(samples.order("O1"))
    assert client.ack()["MSA"][1:3] == ["AA", "O1"]
    order = ImagingOrder.objects.get()
    out = tmp_path / "rsp"
    out.mkdir()
    done = subprocess.run(
        ["/usr/bin/findscu", "-W", "-X", "-od", str(out), "-aet", "DRROOM", "-aec", "VETPACS", "127.0.0.1",
         str(dicom_listener.port), "-k", f"AccessionNumber={order.accession_number}",
         "-k", "PatientBreedDescription", "-k", "PatientBreedCodeSequence", "-k", "PatientSpeciesDescription",
         "-k", "ResponsiblePerson"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (item,) = [dcmread(p) for p in out.glob("rsp*.dcm")]
    assert item.PatientBreedDescription == "Labrador retriever"
    assert item.PatientBreedCodeSequence[0].CodeValue == "62137007"
    assert item.PatientSpeciesDescription == "Canis lupus familiaris"
    assert str(item.ResponsiblePerson) == "Hartley^Jane"


def test_tls_when_configured(hl7_listener_start, tmp_path):
    tool_required("/usr/bin/openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-days", "1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)  # fmt: skip
    listener = hl7_listener_start(HL7_TLS_CERT=str(cert), HL7_TLS_KEY=str(key))
    assert "(TLS)" in listener.log.read_text()
    client = Client(listener.port, tls=True)
    client.send(samples.adt("A04", "TLS1"))
    assert client.ack()["MSA"][1:3] == ["AA", "TLS1"]
    plain = Client(listener.port)
    plain.send(samples.adt("A04", "PLAIN"))
    assert plain.closed()
    assert list(HL7Message.objects.values_list("control_id", flat=True)) == ["TLS1"]


def test_sigterm_stops_the_listener_cleanly(hl7_listener):
    client = Client(hl7_listener.port)
    client.send(samples.adt("A04", "T1"))
    assert client.ack()["MSA"][1] == "AA"
    hl7_listener.process.send_signal(signal.SIGTERM)
    assert hl7_listener.process.wait(timeout=30) == 0
    assert "HL7 listener stopped" in hl7_listener.log.read_text()
