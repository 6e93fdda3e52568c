"""Outbound HL7: tell each configured PMS when an order's images arrive, when it is done
(ORM^O01 status updates) and when its report is signed (ORU^R01 with the report's text).

``order_event`` (subscribed to imaging/orders/events.py) logs one pending message per endpoint and
queues its sending; ``message_send`` sends one over MLLP and records the ACK. The Celery task
retries with exponential backoff until an ``AA``; ``AE``/``AR`` are final and recorded.
"""

import logging
import socket
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils.timezone import localtime, now
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message

from imaging.models import ImagingOrder, Report, Study
from integrations.hl7.messages import HL7Error, escape, header_read, segments, text_decode
from integrations.hl7.mllp import END, START, frame
from integrations.models import HL7Endpoint, HL7Message
from patients.models import Patient

log = logging.getLogger("integrations.hl7")
Status = HL7Message.Status
SEND_TASK = "integrations.tasks.hl7_send"
# ORC-5 order status (HL7 table 0038): in process, completed.
ORDER_STATUS = {"study_received": "IP", "order_completed": "CM", "report_final": "CM"}
# The report's two parts as OBX-3 observation identifiers (LOINC).
FINDINGS = "59776-5^Procedure findings^LN"
CONCLUSION = "19005-8^Radiology report impression^LN"
# An hl7apy message or segment (hl7apy has no type hints): fields are set by attribute name.
HL7apy = Any


def _ids(patient: Patient) -> list[tuple[str | None, str]]:
    """PID-3: the PMS's own id first where we have one, then ours."""
    ids: list[tuple[str | None, str]] = [
        (ext.value, ext.system.removeprefix("hl7:"))
        for ext in patient.external_ids.all()
        if ext.system.startswith("hl7:")
    ]
    return ids + [(patient.patient_id, settings.HL7_APPLICATION)]


def _message_start(kind: str, endpoint: HL7Endpoint, control_id: str, patient: Patient) -> HL7apy:
    """MSH and PID of an outbound ``kind`` ("ORM^O01", "ORU^R01") in the endpoint's version."""
    code, trigger = kind.split("^")
    message = Message(
        f"{code}_{trigger}", version=endpoint.version, validation_level=VALIDATION_LEVEL.TOLERANT
    )
    msh = message.msh
    msh.msh_3, msh.msh_4 = settings.HL7_APPLICATION, settings.HL7_FACILITY
    msh.msh_5, msh.msh_6 = endpoint.receiving_application, endpoint.receiving_facility
    msh.msh_7 = localtime(now()).strftime("%Y%m%d%H%M%S")
    # MSH-9.3, the message structure, exists from 2.4 on.
    msh.msh_9 = f"{kind}^{code}_{trigger}" if endpoint.version >= "2.4" else kind
    msh.msh_10, msh.msh_11 = control_id, "P"
    pid = message.add_segment("PID")
    pid.pid_1 = "1"
    for value, authority in _ids(patient):
        field = pid.add_field("PID_3")
        field.cx_1, field.cx_4 = value, authority
    pid.pid_5 = patient.dicom_name
    return message


def _order_segments(
    message: HL7apy, order: ImagingOrder, *, order_control: str, order_status: str, result_status: str
) -> HL7apy:
    """ORC and OBR naming the order by the PMS's placer number and our accession number."""
    orc = message.add_segment("ORC")
    orc.orc_1 = order_control
    if order.placer_order_number:
        orc.orc_2 = order.placer_order_number
    orc.orc_3 = order.accession_number
    orc.orc_5 = order_status
    obr = message.add_segment("OBR")
    obr.obr_1 = "1"
    if order.placer_order_number:
        obr.obr_2 = order.placer_order_number
    obr.obr_3 = order.accession_number
    obr.obr_4 = f"{order.procedure.code}^{escape(order.procedure.name)}^VETPACS"
    obr.obr_18 = order.accession_number  # placer field 1: the accession number, for viewers
    obr.obr_24 = order.modality_type
    obr.obr_25 = result_status  # result status (table 0123)
    return obr


def _study_link(message: HL7apy, set_id: int, study: Study, result_status: str) -> None:
    """An OBX of type RP (reference pointer): where the study is seen."""
    obx = message.add_segment("OBX")
    obx.obx_1, obx.obx_2, obx.obx_3 = str(set_id), "RP", "STUDY^Study^VETPACS"
    obx.obx_5 = f"{settings.SITE_URL}/studies/{study.pk}/^^URI"
    obx.obx_11 = result_status


def order_message_build(order: ImagingOrder, event: str, endpoint: HL7Endpoint, control_id: str) -> str:
    """ORM^O01 status update (ORC-1 SC) for ``order``, built with hl7apy in the endpoint's version."""
    message = _message_start("ORM^O01", endpoint, control_id, order.patient)
    result_status = "F" if event != "study_received" else "I"
    _order_segments(
        message, order, order_control="SC", order_status=ORDER_STATUS[event], result_status=result_status
    )
    study = order.studies.order_by("id").first()
    if study is not None:
        _study_link(message, 1, study, "F")
    er7: str = message.to_er7()
    return er7 + "\r"


def report_message_build(order: ImagingOrder, report: Report, endpoint: HL7Endpoint, control_id: str) -> str:
    """ORU^R01 with the signed report: ORC-1 RE (observations to follow), OBR-25 F, or C for an
    amended report (a correction, HL7 table 0123); the text as TX OBXs, a line each, findings
    then conclusion (OBX-4 sub-ids 1 and 2), then the link to the study."""
    message = _message_start("ORU^R01", endpoint, control_id, order.patient)
    result_status = "C" if report.status == Report.Status.AMENDED else "F"
    obr = _order_segments(message, order, order_control="RE", order_status="CM", result_status=result_status)
    study = report.study
    if study.study_date:
        obr.obr_7 = (
            f"{study.study_date:%Y%m%d}{study.study_time:%H%M%S}"
            if study.study_time
            else f"{study.study_date:%Y%m%d}"
        )
    obr.obr_22 = localtime(report.finalized_at).strftime("%Y%m%d%H%M%S")  # results reported
    if report.signed_by_name:
        obr.obr_32 = escape(report.signed_by_name)  # principal result interpreter
    set_id = 0
    for sub_id, (code, text) in enumerate(
        [(FINDINGS, report.findings), (CONCLUSION, report.conclusion)], start=1
    ):
        for line in text.splitlines() if text else []:
            set_id += 1
            obx = message.add_segment("OBX")
            obx.obx_1, obx.obx_2, obx.obx_3, obx.obx_4 = str(set_id), "TX", code, str(sub_id)
            if line.strip():
                obx.obx_5 = escape(line)
            obx.obx_11 = result_status
    _study_link(message, set_id + 1, study, result_status)
    er7: str = message.to_er7()
    return er7 + "\r"


def _message_for(order: ImagingOrder, event: str, endpoint: HL7Endpoint, control_id: str) -> tuple[str, str]:
    """The message type and text ``event`` sends: the report once it is signed, else a status."""
    if event == "report_final":
        report = (
            Report.objects.select_related("study")
            .filter(study__order=order)
            .exclude(status=Report.Status.DRAFT)
            .order_by("-updated")
            .first()
        )
        if report is not None:
            return "ORU^R01", report_message_build(order, report, endpoint, control_id)
    return "ORM^O01", order_message_build(order, event, endpoint, control_id)


def order_event(order_id: int, event: str) -> list[HL7Message]:
    """Log a pending message to each endpoint that wants ``event``, and queue the sending."""
    order = ImagingOrder.objects.select_related("patient", "procedure").filter(pk=order_id).first()
    if order is None:
        return []
    created: list[HL7Message] = []
    for endpoint in HL7Endpoint.objects.filter(active=True):
        if not endpoint.wants(event):
            continue
        with transaction.atomic():
            message = HL7Message.objects.create(
                direction=HL7Message.Direction.OUT, status=Status.PENDING, endpoint=endpoint,
                peer=f"{endpoint.host}:{endpoint.port}", patient_id=order.patient_id, raw="",
                sending_application=settings.HL7_APPLICATION, version=endpoint.version,
            )  # fmt: skip
            message.control_id = f"VP{message.pk}"
            message.message_type, message.raw = _message_for(order, event, endpoint, message.control_id)
            message.save(update_fields=["control_id", "message_type", "raw"])
        created.append(message)
        _queue(message.pk)
    return created


def _queue(message_id: int, countdown: int = 0) -> None:
    try:
        current_app.send_task(SEND_TASK, args=[message_id], countdown=countdown)
    except Exception:  # logged as pending: message_resend or the next event sends it
        log.exception("could not queue HL7 message %s", message_id)


class SendLater(Exception):
    """Not sent now (peer down, timeout, an older message to go first): try again later."""


def _ack(sock: socket.socket, timeout: float) -> str:
    sock.settimeout(timeout)
    data = b""
    while END not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise SendLater("connection closed before the ACK")
        data += chunk
    reply = data.split(END)[0]
    return text_decode(reply[reply.index(START) + 1 :] if START in reply else reply)


def message_send(*, message_id: int) -> str:
    """Send one outbound message; returns its final status, or raises SendLater."""
    message = HL7Message.objects.select_related("endpoint").get(pk=message_id)
    if message.status != Status.PENDING:
        return message.status
    endpoint = message.endpoint
    if endpoint is None:  # deleted while the message waited (SET_NULL): nowhere to send it
        HL7Message.objects.filter(pk=message.pk).update(
            status=Status.FAILED, error="not sent: its endpoint was deleted", updated=now()
        )
        return Status.FAILED
    earlier = HL7Message.objects.filter(
        status=Status.PENDING, endpoint=message.endpoint, patient_id=message.patient_id, id__lt=message.id
    ).exists()
    if earlier:
        raise SendLater("an earlier message about this animal is not sent yet")
    HL7Message.objects.filter(pk=message.pk).update(attempts=message.attempts + 1, updated=now())
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=endpoint.timeout) as sock:
            sock.sendall(frame(message.raw.encode()))
            ack = _ack(sock, endpoint.timeout)
    except (OSError, SendLater) as error:
        HL7Message.objects.filter(pk=message.pk).update(error=f"not delivered: {error}"[:2000], updated=now())
        raise SendLater(str(error)) from None
    try:
        msa = next(s for s in segments(ack) if s.startswith("MSA"))
        code = msa.split(header_read(ack).field_separator)[1]
    except (StopIteration, IndexError, HL7Error):
        code = ""
    status = Status.SENT if code in ("AA", "CA") else Status.FAILED
    problem = "" if status == Status.SENT else f"answered {code or 'without an MSA'}"
    HL7Message.objects.filter(pk=message.pk).update(
        status=status, ack_code=code[:2], ack=ack, error=problem, updated=now()
    )
    if status == Status.FAILED:
        log.warning("HL7 %s to %s refused: %s", message.control_id, endpoint, ack[:200])
    return status


def message_resend(*, message: HL7Message) -> None:
    """An admin sends a failed (or stuck) outbound message again."""
    HL7Message.objects.filter(pk=message.pk).update(status=Status.PENDING, error="", updated=now())
    transaction.on_commit(lambda: _queue(message.pk))
