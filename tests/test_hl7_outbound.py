"""Outbound HL7 to a PMS: a real MLLP receiver on a local socket answers AA, AE, or is down."""

import socket
import threading

import pytest

from imaging.orders import services as orders
from integrations.hl7 import outbound
from integrations.hl7.mllp import FrameReader, frame
from integrations.models import HL7Endpoint, HL7Message
from tests.conftest import free_port, wait_for


class Receiver:
    """A PMS's MLLP listener: records what it gets, answers with ``self.code``."""

    def __init__(self, port, code="AA"):
        self.port, self.code, self.received = port, code, []
        self.server = socket.create_server(("127.0.0.1", port))
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                reader = FrameReader(max_size=1 << 20)
                while data := conn.recv(65536):
                    for item in reader.feed(data):
                        text = item.data.decode()
                        self.received.append(text)
                        control = text.split("\r")[0].split("|")[9]
                        conn.sendall(
                            frame(
                                f"MSH|^~\\&|PMS||VETPACS||20261123||ACK|A{control}|P|2.5.1\rMSA|{self.code}|{control}\r".encode()
                            )
                        )

    def close(self):
        self.server.close()


@pytest.fixture
def order(make_owner, make_patient, make_order, actor):
    from patients.services import patient_upsert

    biscuit = make_patient("Biscuit", owner=make_owner("Hartley"))
    patient_upsert(actor=actor, fields={}, patient=biscuit, external=("hl7:VETPMS", "PMS-1001"))
    return make_order(biscuit, placer_order_number="ORD-7")


def endpoint(port, **fields):
    return HL7Endpoint.objects.create(
        name=f"PMS {port}", host="127.0.0.1", port=port, receiving_application="VETPMS", **fields
    )


def test_an_order_status_message_carries_the_pms_ids_and_the_accession_number(order):
    port = free_port()
    receiver = Receiver(port)
    target = endpoint(port, version="2.3.1")
    [message] = outbound.order_event(order.pk, "order_completed")
    assert outbound.message_send(message_id=message.pk) == "sent"
    receiver.close()
    [text] = receiver.received
    lines = {line[:3]: line.split("|") for line in text.strip("\r").split("\r")}
    assert lines["MSH"][8] == "ORM^O01" and lines["MSH"][11] == "2.3.1" and lines["MSH"][4] == "VETPMS"
    assert lines["PID"][3].startswith("PMS-1001^^^VETPMS~")
    assert lines["PID"][5] == "Hartley^Biscuit"
    assert (lines["ORC"][1], lines["ORC"][2], lines["ORC"][3], lines["ORC"][5]) == (
        "SC",
        "ORD-7",
        order.accession_number,
        "CM",
    )
    assert lines["OBR"][4] == "DX-THX2^Thorax 2 views (lateral + VD/DV)^VETPACS"
    message.refresh_from_db()
    assert (message.status, message.ack_code, message.attempts, message.endpoint) == ("sent", "AA", 1, target)


def test_ae_is_recorded_as_failed_and_a_peer_that_is_down_is_tried_again(order):
    port = free_port()
    endpoint(port)
    [message] = outbound.order_event(order.pk, "study_received")
    with pytest.raises(outbound.SendLater):
        outbound.message_send(message_id=message.pk)  # nobody listening
    message.refresh_from_db()
    assert message.status == "pending" and "not delivered" in message.error
    receiver = Receiver(port, code="AE")
    assert outbound.message_send(message_id=message.pk) == "failed"
    receiver.close()
    message.refresh_from_db()
    assert (message.status, message.ack_code, message.attempts) == ("failed", "AE", 2)


def test_messages_about_one_animal_go_in_order(order):
    port = free_port()
    endpoint(port)
    first = outbound.order_event(order.pk, "study_received")[0]
    second = outbound.order_event(order.pk, "order_completed")[0]
    with pytest.raises(outbound.SendLater, match="earlier message"):
        outbound.message_send(message_id=second.pk)
    receiver = Receiver(port)
    assert outbound.message_send(message_id=first.pk) == "sent"
    assert outbound.message_send(message_id=second.pk) == "sent"
    receiver.close()
    assert [t.split("\rORC|")[1].split("\r")[0].split("|")[4] for t in receiver.received] == ["IP", "CM"]


def test_a_message_whose_endpoint_was_deleted_is_recorded_as_failed(order):
    endpoint(free_port())
    [message] = outbound.order_event(order.pk, "study_received")
    HL7Endpoint.objects.all().delete()  # while the message waited for the PMS
    assert outbound.message_send(message_id=message.pk) == "failed"
    message.refresh_from_db()
    assert (message.status, message.endpoint, message.error) == (
        "failed",
        None,
        "not sent: its endpoint was deleted",
    )


def test_an_endpoint_hears_only_its_events(order):
    endpoint(free_port(), events=["order_completed"])
    assert outbound.order_event(order.pk, "study_received") == []
    assert len(outbound.order_event(order.pk, "order_completed")) == 1


def test_a_worker_delivers_when_the_order_completes_retrying_until_the_pms_is_up(
    process_env, reference_data, make_owner, make_patient, make_order, actor, celery_worker
):
    port = free_port()
    endpoint(port)
    order = make_order(make_patient("Rex", owner=make_owner("Okafor")))
    orders.order_status_set(actor=actor, order=order, status="completed")  # committed: the event is queued
    wait_for(
        lambda: HL7Message.objects.filter(direction="out").exists(),
        timeout=60,
        message="the outbound message",
    )
    message = HL7Message.objects.get(direction="out")
    wait_for(
        lambda: HL7Message.objects.get(pk=message.pk).attempts >= 1, timeout=60, message="a first attempt"
    )
    receiver = Receiver(port)  # the PMS comes up; the backoff retry delivers
    wait_for(lambda: HL7Message.objects.get(pk=message.pk).status == "sent", timeout=60, message="delivery")
    receiver.close()
    assert len(receiver.received) == 1 and "|CM" in receiver.received[0]


def test_an_admin_replays_a_refused_inbound_message_once_its_cause_is_fixed(reference_data, dog, settings):
    from integrations.hl7.inbound import message_receive, message_replay
    from patients.models import Patient
    from tests import hl7_samples as samples

    settings.HL7_ALLOWED_SENDERS = ["OTHERPMS"]  # the clinic forgot to allow its PMS
    ack = message_receive(samples.adt("A04", "RP1").encode(), "127.0.0.1:9").decode()
    assert "|AR|RP1" in ack and "not allowed" in ack
    settings.HL7_ALLOWED_SENDERS = ["OTHERPMS", "VETPMS"]
    logged = HL7Message.objects.get()
    assert "|AA|RP1" in message_replay(message=logged)
    logged.refresh_from_db()
    assert (logged.status, logged.error) == ("processed", "")
    assert Patient.objects.get().species == dog
