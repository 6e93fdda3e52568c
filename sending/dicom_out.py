"""C-STORE SCU to a registered DICOM node: the sender C-MOVE uses (imaging/dicom/net/fast/
store_scu.py), on an association we request ourselves.

Each object goes as stored when the node accepts its transfer syntax (the file, byte for byte),
else decompressed, or losslessly compressed when the node takes no uncompressed syntax
(archive/retrieve.instance_sendable; never lossy: PS3.5 8.2 leaves lossy compression to the
creator of the image). The contexts proposed are C-MOVE's (retrieve_scp.move_contexts): per SOP
class one with the uncompressed syntaxes and one per stored compressed syntax. Over TLS (PS3.15
B.9, the node's settings as C-MOVE uses them) pynetdicom's requestor sends instead.
"""

import logging
from collections.abc import Callable
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, _config

from imaging.archive.retrieve import InstanceUnavailable, RetrievedInstance, instance_sendable
from imaging.dicom.net.fast.store_scu import StoreAbandoned, StoreAssociation
from imaging.dicom.net.retrieve_scp import move_contexts, store_outcome
from imaging.dicom.net.tls import handshake_failure, node_tls_args
from imaging.models import Modality

log = logging.getLogger("sending")

# store_outcome's words as SendResult.Outcome's.
OUTCOMES = {"completed": "success", "warning": "warning", "failed": "failure"}
# Record(instance, outcome, status code or None, comment)
Record = Callable[[RetrievedInstance, str, int | None, str], None]


class Unreachable(Exception):
    """The node could not be associated with, or the association broke off: worth a retry."""


class _Association(StoreAssociation):
    """StoreAssociation that keeps why it could not associate (a retry's reason, shown to staff)."""

    def __init__(self, ae: Any, host: str, port: int, *, ae_title: str, contexts: list[Any]) -> None:
        self.is_established = False
        self.accepted_contexts = []
        self.max_pdu = 0
        self.timeout = ae.dimse_timeout or 60
        self.sock = None
        self.error = ""
        try:
            self._associate(ae, host, port, ae_title, contexts)
        except (OSError, StoreAbandoned, ValueError) as error:
            self.error = str(error) or type(error).__name__
            self.close()


def requestor_ae(ae_title: str) -> AE:
    ae = AE(ae_title=ae_title or "VETPACS")
    ae.acse_timeout = ae.connection_timeout = 30
    ae.dimse_timeout = ae.network_timeout = 120
    _config.STORE_SEND_CHUNKED_DATASET = True  # pynetdicom (TLS) sends a path from the file too
    return ae


def node_associate(node: Modality, ae_title: str, instances: list[RetrievedInstance]) -> Any:
    """An established association with ``node``, or Unreachable."""
    ae = requestor_ae(ae_title)
    contexts = move_contexts(instances)
    tls_args = node_tls_args(node)
    if tls_args is None:
        assoc = _Association(ae, node.host, int(node.port or 0), ae_title=node.ae_title, contexts=contexts)
        if not assoc.is_established:
            raise Unreachable(f"{node.ae_title} at {node.host}:{node.port}: {assoc.error}")
        return assoc
    tls_assoc = ae.associate(
        node.host, int(node.port or 0), contexts=contexts, ae_title=node.ae_title, tls_args=tls_args
    )
    if not tls_assoc.is_established:
        why = handshake_failure(tls_args[0]) or "association refused or not answered"
        raise Unreachable(f"{node.ae_title} at {node.host}:{node.port} (TLS): {why}")
    return tls_assoc


def dicom_send(node: Modality, ae_title: str, instances: list[RetrievedInstance], record: Record) -> None:
    """Send ``instances`` to ``node``, each outcome to ``record``. Raises Unreachable when the
    association cannot be made or breaks off (what was answered is recorded; the rest is not)."""
    if not instances:
        return
    assoc = node_associate(node, ae_title, instances)
    accepted: dict[str, list[str]] = {}
    message_id = 0
    try:
        for item in instances:
            if item.sop_class_uid not in accepted:
                accepted[item.sop_class_uid] = [
                    str(cx.transfer_syntax[0])
                    for cx in assoc.accepted_contexts
                    if cx.abstract_syntax == item.sop_class_uid and cx.as_scu
                ]
            message_id = message_id % 65535 + 1
            try:
                with instance_sendable(item, accepted[item.sop_class_uid]) as path:
                    status: Dataset = assoc.send_c_store(path, msg_id=message_id)
            except InstanceUnavailable as error:  # this object cannot go to this node: the others do
                record(item, "failure", None, str(error)[:255])
                continue
            if "Status" not in status:  # no answer: the association is gone (store_scu aborted it)
                raise Unreachable(f"{node.ae_title}: the association broke off at {item.sop_instance_uid}")
            code = int(status.Status)
            record(
                item, OUTCOMES[store_outcome(status)], code, str(status.get("ErrorComment", "") or "")[:255]
            )
    finally:
        if assoc.is_established:
            assoc.release()
