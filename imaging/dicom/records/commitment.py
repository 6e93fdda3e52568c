"""Storage Commitment (PS3.4 J) as data sets: the request's Action Information read into plain
values, and the report's Event Information built from them. No socket, no database."""

from collections.abc import Sequence

from pydicom.dataset import Dataset

from imaging.dicom.records.integrity import is_uid

STORAGE_COMMITMENT_PUSH_MODEL = "1.2.840.10008.1.20.1"  # the SOP Class (PS3.4 J.3.1)
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"  # its well-known SOP Instance (PS3.4 J.3.5)
REQUEST_STORAGE_COMMITMENT = 1  # Action Type ID of the N-ACTION (PS3.4 Table J.3-1)
# Event Type IDs of the N-EVENT-REPORT (PS3.4 Table J.3-2)
ALL_COMMITTED = 1  # Storage Commitment Request Successful
SOME_FAILED = 2  # Storage Commitment Request Complete - Failures Exist

# Failure Reason (0008,1197) in the Failed SOP Sequence (PS3.4 J.3.3.1.4, PS3.3 C.14.1.1)
PROCESSING_FAILURE = 0x0110  # a general failure: here, never indexed in the time we wait
NO_SUCH_OBJECT_INSTANCE = 0x0112  # we never received it
CLASS_INSTANCE_CONFLICT = 0x0119  # we hold it under another SOP Class

Reference = tuple[str, str]  # (SOP Class UID, SOP Instance UID)


class RequestInvalid(Exception):
    """The Action Information is not a valid request: ``missing`` (an attribute is absent, PS3.7
    C.5: Missing Attribute) or not (a value is wrong: Invalid Attribute Value)."""

    def __init__(self, detail: str, *, missing: bool) -> None:
        super().__init__(detail)
        self.detail, self.missing = detail, missing


def request_read(information: Dataset | None) -> tuple[str, list[Reference]]:
    """The Transaction UID and the Referenced SOP Sequence's (class, instance) pairs of a
    Request Storage Commitment's Action Information (PS3.4 Table J.3-1: both type 1)."""
    if information is None:
        raise RequestInvalid("Action Information is missing", missing=True)
    try:
        transaction_uid = _uid(information, "TransactionUID", "Transaction UID")
        if "ReferencedSOPSequence" not in information or not information.ReferencedSOPSequence:
            raise RequestInvalid("Referenced SOP Sequence is missing or empty", missing=True)
        references = [
            (_uid(item, "ReferencedSOPClassUID", "Referenced SOP Class UID"),
             _uid(item, "ReferencedSOPInstanceUID", "Referenced SOP Instance UID"))
            for item in information.ReferencedSOPSequence
        ]  # fmt: skip
    except RequestInvalid:
        raise
    except Exception as error:  # pydicom cannot decode a value
        raise RequestInvalid(f"Unreadable Action Information: {error}", missing=False) from None
    return transaction_uid, references


def _uid(data_set: Dataset, keyword: str, name: str) -> str:
    value = data_set.get(keyword)
    if value is None or value == "":
        raise RequestInvalid(f"{name} is missing", missing=True)
    if not is_uid(str(value)):
        raise RequestInvalid(f"{name} is not a valid UID", missing=False)
    return str(value)


def report_event_information(
    *,
    transaction_uid: str,
    committed: Sequence[Sequence[str]],
    failed: Sequence[Sequence[str | int]],
    retrieve_ae_title: str,
) -> Dataset:
    """The N-EVENT-REPORT's Event Information (PS3.4 Table J.3-2): the Transaction UID of the
    request, the Referenced SOP Sequence of what is committed (present when any is, and where it
    may be retrieved from), the Failed SOP Sequence with a Failure Reason for each that is not
    (event type 2 only)."""
    report = Dataset()
    report.TransactionUID = transaction_uid
    if committed:
        report.RetrieveAETitle = retrieve_ae_title
        report.ReferencedSOPSequence = [_item(sop_class, instance) for sop_class, instance in committed]
    if failed:
        items = []
        for sop_class, instance, reason in failed:
            item = _item(str(sop_class), str(instance))
            item.FailureReason = int(reason)
            items.append(item)
        report.FailedSOPSequence = items
    return report


def _item(sop_class: str, instance: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = instance
    return item
