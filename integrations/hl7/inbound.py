"""Inbound HL7: one entry (``message_receive``), thin handlers over the services the UI uses
(inbound_adt.py: animals, owners and visits; inbound_orders.py: imaging orders;
inbound_results.py: a consult's answer as ORU^R01).

Every message is logged; the same message again (same sender, control id and content, see
``message_digest``) returns the first ACK and changes nothing; ``AA`` is sent only after the
change is committed; bad data rolls
back whatever the message had changed and is answered ``AE`` (``AR`` for what we do not
accept at all) with an ERR naming the segment, field and problem.
"""

import logging
from collections.abc import Callable
from typing import Literal, overload

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.timezone import now

from integrations.hl7.inbound_adt import adt_merge, adt_register, adt_visit_end
from integrations.hl7.inbound_orders import order_message
from integrations.hl7.inbound_results import result_message
from integrations.hl7.messages import (
    Header,
    HL7Error,
    Segment,
    ack_build,
    header_read,
    message_digest,
    message_segments,
    structure_check,
    text_decode,
)
from integrations.models import HL7Message
from vetclinic.audit.models import Channel
from vetclinic.audit.services import Actor

log = logging.getLogger("integrations.hl7")
Status = HL7Message.Status


class Received:
    """One parsed message on its way through a handler."""

    def __init__(self, text: str, header: Header, peer: str, message: HL7Message | None = None) -> None:
        self.text, self.header, self.peer, self.message = text, header, peer, message
        self.segments = message_segments(text, header)
        self.actor = Actor(
            channel=Channel.HL7, name=f"{header.sending_application}@{header.sending_facility}".strip("@")
        )

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    @overload
    def one(self, name: str, *, required: Literal[True] = True) -> Segment: ...
    @overload
    def one(self, name: str, *, required: bool) -> Segment | None: ...

    def one(self, name: str, *, required: bool = True) -> Segment | None:
        found = self.all(name)
        if not found and required:
            raise HL7Error(f"{name} segment is missing", code=100, segment=name)
        return found[0] if found else None

    @property
    def system(self) -> str:
        """The namespace of the sender's own ids: its application name (MSH-3)."""
        return f"hl7:{self.header.sending_application.split(self.header.component)[0] or 'unknown'}"


def _allowed(header: Header, peer: str) -> bool:
    senders = settings.HL7_ALLOWED_SENDERS
    if senders and header.sending_application.split(header.component)[0] not in senders:
        return False
    addresses = settings.HL7_ALLOWED_ADDRESSES
    return not addresses or peer.rsplit(":", 1)[0] in addresses


def message_receive(data: bytes, peer: str, *, oversize: int = 0) -> bytes:
    """Handle one framed message; return the ACK to send back."""
    text = text_decode(data)
    try:
        header = header_read(text)
    except HL7Error as no_header:
        log.warning("HL7 from %s without MSH: %r", peer, text[:60])
        return ack_build(header_read("MSH|^~\\&|||||||ACK||P|2.5.1"), code="AR", error=no_header).encode()
    # The log row is written as processed with its AA, in the transaction of the change: one
    # write when all goes well, and no moment at which the log says AA for a change that is not
    # committed. A refusal undoes the whole transaction; the message is then logged as refused.
    digest = message_digest(text, header)
    message = _log_row(header, peer, text, oversize, digest)
    message.status, message.ack_code, message.ack = Status.PROCESSED, "AA", ack_build(header, code="AA")
    try:
        with transaction.atomic():  # all or nothing: the services are called with savepoints=False
            # The log row first: a second copy of the message (same sender, control id and
            # content) fails here, or waits here while the first is still being handled, then fails.
            message.save()
            error = _process(text, header, peer, oversize, message=message)
            if error is not None:
                transaction.set_rollback(True)
    except IntegrityError:
        return _seen_before(header, digest)
    if error is None:
        return message.ack.encode()
    message = _log_row(header, peer, text, oversize, digest)
    _refusal_set(message, header, error)
    log.warning(
        "HL7 %s %s from %s: %s %s",
        header.message_type,
        header.control_id,
        peer,
        message.ack_code,
        error.args[0],
    )
    try:
        with transaction.atomic():  # a savepoint when the caller has a transaction open
            message.save()
    except IntegrityError:  # another copy was answered in the meantime: its answer stands
        return _seen_before(header, digest)
    return message.ack.encode()


def message_replay(*, message: HL7Message) -> str:
    """An admin runs a logged inbound message again (after fixing what made it fail, say a
    crosswalk entry). Its log row gets the new outcome; returns the ACK text."""
    header = header_read(message.raw)
    with transaction.atomic():
        error = _process(message.raw, header, message.peer, 0, message=message)
        if error is None:
            message.status, message.ack_code, message.ack, message.error = (
                Status.PROCESSED,
                "AA",
                ack_build(header, code="AA"),
                "",
            )
            return _outcome_save(message)
        transaction.set_rollback(True)
    _refusal_set(message, header, error)
    return _outcome_save(message)


def message_rerun(*, text: str, peer: str, message: HL7Message | None = None) -> HL7Error | None:
    """Run a message accepted earlier again (an order held for an unmapped code, once the
    code is mapped), all or nothing; returns None, or the HL7Error that refused it. Its log
    row keeps the AA it was answered with."""
    header = header_read(text)
    with transaction.atomic():
        error = _process(text, header, peer, 0, message=message)
        if error is not None:
            transaction.set_rollback(True)
    return error


def _log_row(header: Header, peer: str, text: str, oversize: int, digest: str) -> HL7Message:
    """The unsaved log row of an inbound message, without its outcome."""
    return HL7Message(
        direction=HL7Message.Direction.IN, peer=peer[:255], sending_application=header.sending_application[:180],
        sending_facility=header.sending_facility[:180], control_id=header.control_id[:199], digest=digest,
        message_type=header.message_type[:32], version=header.version[:16],
        raw=text if not oversize else text + f"\n[... {oversize} bytes in all; the rest was not kept]",
    )  # fmt: skip


def _refusal_set(message: HL7Message, header: Header, error: HL7Error) -> None:
    """``message`` refused: AE, or AR for what we do not accept at all, with its ACK."""
    message.status = Status.REJECTED if error.reject else Status.ERROR
    message.ack_code = "AR" if error.reject else "AE"
    message.ack = ack_build(header, code=message.ack_code, error=error)
    message.error = str(error.args[0])[:2000]


def _outcome_save(message: HL7Message) -> str:
    message.updated = now()
    message.save(update_fields=["status", "ack_code", "ack", "error", "updated"])
    return message.ack


def _seen_before(header: Header, digest: str) -> bytes:
    """The first ACK to a message seen before (same sender, control id and content: resent, or
    sent on another connection at the same moment), counted as a repeat."""
    earlier = HL7Message.objects.filter(
        direction=HL7Message.Direction.IN, sending_application=header.sending_application[:180],
        sending_facility=header.sending_facility[:180], control_id=header.control_id[:199], digest=digest,
    ).exclude(ack="").first()  # fmt: skip
    if earlier is None:
        return ack_build(header, code="AR", error=HL7Error("Duplicate message", code=205)).encode()
    HL7Message.objects.filter(pk=earlier.pk).update(repeats=earlier.repeats + 1, updated=now())
    return earlier.ack.encode()


def _process(
    text: str, header: Header, peer: str, oversize: int, message: HL7Message | None = None
) -> HL7Error | None:
    """Run the handler: None when it succeeded, else the HL7Error. It runs without a savepoint
    of its own: on an error the caller rolls back the whole transaction."""
    try:
        if not _allowed(header, peer):
            raise HL7Error(
                f"Sender {header.sending_application} at {peer} is not allowed", code=207, reject=True
            )
        if oversize:
            raise HL7Error(
                f"The message is {oversize} bytes; the limit is {settings.HL7_MAX_MESSAGE_BYTES}", reject=True
            )
        handler = HANDLERS.get(header.message_type)
        if handler is None:
            known = {t.split("^")[0] for t in HANDLERS}
            kind = header.message_type.split(header.component)[0]
            raise HL7Error(
                f"{header.message_type.replace(header.component, ' ') or 'A message without a type'} is not accepted",
                code=201 if kind in known else 200, segment="MSH", field=9, reject=True,
            )  # fmt: skip
        structure_check(text, header)
        handler(Received(text, header, peer, message))
    except HL7Error as error:
        return error
    except ValidationError as error:
        return _validation_error(error)
    except Exception as error:  # a bug must not drop the connection: AE, logged with the trace
        log.exception("HL7 %s %s from %s failed", header.message_type, header.control_id, peer)
        return HL7Error(f"Internal error: {type(error).__name__}", code=207)
    return None


def _validation_error(error: ValidationError) -> HL7Error:
    """A service's ValidationError, named by the HL7 field it came from where we know it."""
    fields = {"name": ("PID", 5), "birth_date": ("PID", 7), "sex": ("PID", 8), "species": ("PID", 35),
              "breed": ("PID", 36), "microchip": ("PID", 3), "kg": ("OBX", 5),
              "text": ("OBX", 5), "author_name": ("OBR", 32), "source_id": ("MSH", 10)}  # fmt: skip
    if hasattr(error, "message_dict"):
        name, messages = next(iter(error.message_dict.items()))
        segment, field = fields.get(name, ("", 0))
        return HL7Error(f"{name}: {' '.join(messages)}", code=102, segment=segment, field=field)
    return HL7Error(" ".join(error.messages), code=207)


# A handler's result is its own (the record it made or changed); message_receive wants none.
HANDLERS: dict[str, Callable[[Received], object]] = {
    "ORM^O01": order_message,
    "OMI^O23": order_message,
    "ORU^R01": result_message,
    **{f"ADT^{event}": adt_register for event in ("A01", "A04", "A05", "A08", "A28", "A31")},
    "ADT^A40": adt_merge,
    "ADT^A03": adt_visit_end,
    "ADT^A11": adt_visit_end,
}
