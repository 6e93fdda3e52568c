"""STOW-RS to a DICOMweb endpoint (PS3.18 10.5): the stored files as they are, a batch per
request (multipart/related; type="application/dicom"), each instance's outcome from the answer's
Referenced SOP Sequence (0008,1199), Failed SOP Sequence (0008,1198) and its Failure Reason
(0008,1197), and Warning Reason (0008,1196) (PS3.18 10.5.3, Table 10.5.3-3)."""

import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.client import HTTPException

from imaging.archive.retrieve import RetrievedInstance
from imaging.archive.transcode import instance_path
from sending.dicom_out import Record, Unreachable

BATCH = 50  # instances per request: one answer each, a bounded body
TIMEOUT = 300  # seconds without progress on the connection
# HTTP answers worth a retry: the server is busy or down for now (RFC 9110 15.6).
TRANSIENT = {408, 429, 500, 502, 503, 504}


def _body(instances: list[RetrievedInstance], boundary: str) -> Iterator[bytes]:
    for item in instances:
        with instance_path(item.storage_key) as path, open(path, "rb") as file:
            yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            yield file.read()
            yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _uids(answer: dict, tag: str) -> dict[str, dict]:
    items = (answer.get(tag) or {}).get("Value") or []
    found = {}
    for item in items:
        uid = ((item.get("00081155") or {}).get("Value") or [""])[0]
        found[uid] = item
    return found


def _value(item: dict, tag: str) -> int | None:
    values = (item.get(tag) or {}).get("Value") or []
    return int(values[0]) if values else None


def stow_send(url: str, auth_header: str, instances: list[RetrievedInstance], record: Record) -> None:
    """POST ``instances`` to ``url``/studies; each outcome to ``record``. Raises Unreachable on a
    connection failure or a busy server (the batch's instances are not recorded)."""
    target = url.rstrip("/") + "/studies"
    for start in range(0, len(instances), BATCH):
        batch = instances[start : start + BATCH]
        boundary = secrets.token_hex(16)
        headers = {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        }
        if auth_header:
            headers["Authorization"] = auth_header
        request = urllib.request.Request(target, data=b"".join(_body(batch, boundary)), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 (an admin's URL)
                code, content = response.status, response.read()
        except urllib.error.HTTPError as error:  # 4xx/5xx: its body may still say which failed
            code, content = error.code, error.read()
        except (urllib.error.URLError, OSError, HTTPException) as error:
            raise Unreachable(f"{target}: {getattr(error, 'reason', None) or error}") from error
        if code in TRANSIENT:
            raise Unreachable(f"{target}: HTTP {code}")
        try:
            answer = json.loads(content) if content else {}
        except ValueError:
            answer = {}
        if isinstance(answer, list):  # some servers answer a one-item array
            answer = answer[0] if answer else {}
        stored, failed = _uids(answer, "00081199"), _uids(answer, "00081198")
        for item in batch:
            if item.sop_instance_uid in failed:
                reason = _value(failed[item.sop_instance_uid], "00081197")
                record(item, "failure", reason, f"HTTP {code}")
            elif item.sop_instance_uid in stored:
                warning = _value(stored[item.sop_instance_uid], "00081196")
                record(item, "warning" if warning else "success", warning or 0, "")
            elif 200 <= code < 300:  # 200 without a per-instance answer: the server says all were stored
                record(item, "success", 0, "")
            else:
                record(item, "failure", None, f"HTTP {code}")
