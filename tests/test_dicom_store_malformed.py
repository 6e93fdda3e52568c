"""Malformed C-STOREs on a real listener, built byte by byte: each gets a failure status with an
Error Comment (PS3.4 B.2.3), never an abort, and the rest of the association is stored."""

import struct
import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom import _config as pynetdicom_config
from pynetdicom.sop_class import CTImageStorage

from imaging.models import Instance, Modality
from tests.conftest import tool_required, wait_for

CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"  # bundled
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
SOP_CLASS, SOP_INSTANCE, STUDY = 0x00080016, 0x00080018, 0x0020000D
ROWS, PATIENT_NAME = 0x00280010, 0x00100010
LONG_UID = "1.2." + ".".join(["1234567"] * 24) + ".9999"  # 200 characters: a UID has at most 64


@pytest.fixture(autouse=True)
def send_files_as_they_are(monkeypatch):
    """pynetdicom sends a file path as its bytes, undecoded; and lets a request carry any UID."""
    monkeypatch.setattr(pynetdicom_config, "STORE_SEND_CHUNKED_DATASET", True)
    monkeypatch.setitem(pynetdicom_config.VALIDATORS, "UI", lambda value: (True, ""))


@pytest.fixture
def storescu_modality(reference_data):
    return Modality.objects.create(ae_title="STORESCU", host="127.0.0.1", modality_type="CT")


def element(tag, vr, value, little=True):
    """One data element, explicit VR (PS3.5 7.1.2); ``vr`` None: implicit VR (7.1.3)."""
    order = "<" if little else ">"
    if vr is None:
        return struct.pack(order + "HHI", tag >> 16, tag & 0xFFFF, len(value)) + value
    if vr in LONG_VRS:
        return struct.pack(order + "HH2s2xI", tag >> 16, tag & 0xFFFF, vr, len(value)) + value
    return struct.pack(order + "HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def uid(value):
    value = value.encode()
    return value + b"\x00" * (len(value) % 2)


def ct_elements():
    """CT_small's elements under new UIDs, sequences left out: [tag, VR, value bytes] in order."""
    ds = pydicom.dcmread(CT_SMALL)
    for elem in list(ds):
        if elem.VR == "SQ":
            del ds[elem.tag]
    ds.SOPInstanceUID, ds.StudyInstanceUID = generate_uid(), generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    out = pydicom.filebase.DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    pydicom.filewriter.write_dataset(out, ds)
    data, pos, elements = out.getvalue(), 0, []
    while pos < len(data):
        group, number, vr = struct.unpack_from("<HH2s", data, pos)
        if vr in LONG_VRS:
            (length,), pos = struct.unpack_from("<I", data, pos + 8), pos + 12
        else:
            (length,), pos = struct.unpack_from("<H", data, pos + 6), pos + 8
        elements.append([group << 16 | number, vr, data[pos : pos + length]])
        pos += length
    return elements


def encoded(elements, vr=True, little=True):
    return b"".join(element(tag, v if vr else None, value, little) for tag, v, value in elements)


def changed(elements, tag, vr=None, value=None):
    return [[t, vr or v, value if value is not None and t == tag else val] if t == tag else [t, v, val]
            for t, v, val in elements]  # fmt: skip


def without(elements, tag):
    return [entry for entry in elements if entry[0] != tag]


def value_of(elements, tag):
    return next(value for t, _vr, value in elements if t == tag).rstrip(b"\x00").decode()


def part10(folder, data, *, sop_instance, sop_class=CTImageStorage, syntax=ExplicitVRLittleEndian):
    """A Part 10 file whose File Meta announces ``sop_class``/``sop_instance`` in ``syntax`` (what
    pynetdicom puts in the C-STORE request) and whose data set is ``data``, as it is."""
    meta = b"".join([
        element(0x00020001, b"OB", b"\x00\x01"),
        element(0x00020002, b"UI", uid(sop_class)),
        element(0x00020003, b"UI", uid(sop_instance)),
        element(0x00020010, b"UI", uid(syntax)),
    ])  # fmt: skip
    path = Path(folder) / f"{generate_uid()}.dcm"
    group_length = element(0x00020000, b"UL", struct.pack("<I", len(meta)))
    path.write_bytes(b"\0" * 128 + b"DICM" + group_length + meta + data)
    return path


def as_announced(folder, elements, *, sop_instance=None, syntax=ExplicitVRLittleEndian):
    """``elements`` in a Part 10 file that announces the SOP Instance UID they carry."""
    sop_instance = sop_instance or value_of(elements, SOP_INSTANCE)
    return part10(folder, encoded(elements), sop_instance=sop_instance, syntax=syntax)


def case_sop_class_as_un(folder):
    elements = ct_elements()
    return as_announced(folder, changed(elements, SOP_CLASS, vr=b"UN"))


def case_long_uid_in_command_and_data(folder):
    return as_announced(folder, changed(ct_elements(), SOP_INSTANCE, value=uid(LONG_UID)))


def case_long_uid_in_command(folder):
    return part10(folder, encoded(ct_elements()), sop_instance=LONG_UID)


def case_long_sop_instance_uid_in_data(folder):
    elements = changed(ct_elements(), SOP_INSTANCE, value=uid(LONG_UID))
    return part10(folder, encoded(elements), sop_instance=generate_uid())


def case_long_study_uid(folder):
    elements = changed(ct_elements(), STUDY, value=uid(LONG_UID))
    return as_announced(folder, elements)


def case_unknown_vr(folder):
    elements = changed(ct_elements(), PATIENT_NAME, vr=b"ZZ")
    return as_announced(folder, elements)


def case_not_a_vr(folder):
    elements = changed(ct_elements(), PATIENT_NAME, vr=b"\x01\x02")
    return as_announced(folder, elements)


def case_odd_length_rows(folder):
    elements = changed(ct_elements(), ROWS, value=b"\x80\x00\x00")
    return as_announced(folder, elements)


def case_odd_length_uid(folder):
    elements = ct_elements()
    instance = generate_uid()
    instance = instance if len(instance) % 2 else instance[:-1]
    elements = changed(elements, SOP_INSTANCE, value=instance.encode())
    return part10(folder, encoded(elements), sop_instance=instance)


def case_truncated(folder):
    elements = ct_elements()
    data = encoded(elements)
    return part10(folder, data[: len(data) - 1001], sop_instance=value_of(elements, SOP_INSTANCE))


def case_implicit_data_on_explicit_context(folder):
    elements = ct_elements()
    return part10(folder, encoded(elements, vr=False), sop_instance=value_of(elements, SOP_INSTANCE))


def case_explicit_data_on_implicit_context(folder):
    elements = ct_elements()
    return as_announced(folder, elements, syntax=ImplicitVRLittleEndian)


def case_big_endian_data(folder):
    elements = ct_elements()
    return part10(folder, encoded(elements, little=False), sop_instance=value_of(elements, SOP_INSTANCE))


def case_no_sop_instance_uid(folder):
    elements = ct_elements()
    announced = value_of(elements, SOP_INSTANCE)
    return as_announced(folder, without(elements, SOP_INSTANCE), sop_instance=announced)


def case_no_sop_class_uid(folder):
    elements = ct_elements()
    return as_announced(folder, without(elements, SOP_CLASS))


def case_good(folder):
    elements = ct_elements()
    return as_announced(folder, elements)


NOT_A_UID = "Invalid request: Affected SOP Instance UID is not a valid UID"
# Each malformed request, and what it must be answered. A UN for a known element is what a
# sender that does not know its VR writes (PS3.5 6.2.2), and an odd length is read as it is: both
# are stored, as they came. Everything else is refused, alone. (A UID too long in the command set
# itself: tests/test_dicom_fast_path.py; plain pynetdicom aborts the association.)
CASES = [
    (case_sop_class_as_un, 0x0000, None),
    (case_long_sop_instance_uid_in_data, 0xA900, "SOPInstanceUID is not a valid UID"),
    (case_long_study_uid, 0xA900, "StudyInstanceUID is not a valid UID"),
    (case_unknown_vr, 0xC000, "Unreadable data set: Unknown Value Representation 'ZZ'"),
    (case_not_a_vr, 0xC000, "Malformed data set: invalid VR 0x0102"),
    (case_odd_length_rows, 0xC000, "Unreadable data set: Expected total bytes"),
    (case_odd_length_uid, 0x0000, None),
    (case_truncated, 0xC000, "Malformed data set: element (7FE0,0010) needs"),
    (case_implicit_data_on_explicit_context, 0xC000, "Malformed data set: invalid VR"),
    (case_explicit_data_on_implicit_context, 0xC000, "Malformed data set: element (0008,0005) needs"),
    (case_big_endian_data, 0xC000, "Malformed data set: invalid VR"),
    (case_no_sop_instance_uid, 0xA900, "SOPInstanceUID is missing"),
    (case_no_sop_class_uid, 0xA900, "SOPClassUID is missing"),
]


def sop_instance_uid_of(path):
    return str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.MediaStorageSOPInstanceUID)


def test_each_malformed_c_store_gets_its_failure_status_and_the_association_goes_on(
    storescu_modality, dicom_listener, celery_worker, storage_root, tmp_path
):
    assert len(LONG_UID) == 200
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.add_requested_context(CTImageStorage, ImplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="VETPACS")
    assert assoc.is_established
    cases = [(case_good, 0x0000, None), *CASES, (case_good, 0x0000, None)]
    kept, answers = [], []
    for case, code, comment in cases:
        path = case(tmp_path)
        status = assoc.send_c_store(path)  # sent as the file's bytes are
        said = status.get("ErrorComment", "")[: len(comment or "")] or None  # its start
        answers.append((case.__name__, status.get("Status"), said))
        if code == 0x0000:
            kept.append(sop_instance_uid_of(path))
    assert assoc.is_established
    assoc.release()

    assert answers == [(case.__name__, code, comment) for case, code, comment in cases]
    wait_for(lambda: Instance.objects.count() >= len(kept), message="the instances kept indexed")
    assert sorted(Instance.objects.values_list("sop_instance_uid", flat=True)) == sorted(kept)
    assert set(Instance.objects.values_list("sop_class_uid", flat=True)) == {CTImageStorage}
    assert len(list(storage_root.rglob("*.dcm"))) == len(kept)


def command_set(message_id, elements):
    """A C-STORE-RQ command set (PS3.7 9.3.1.1), implicit VR, from {tag: value bytes}."""
    body = b"".join(element(tag, None, value) for tag, value in sorted({
        0x00000100: struct.pack("<H", 0x0001), 0x00000110: struct.pack("<H", message_id),
        0x00000700: struct.pack("<H", 0x0002), 0x00000800: struct.pack("<H", 0x0000), **elements,
    }.items()))  # fmt: skip
    return element(0x00000000, None, struct.pack("<I", len(body))) + body


def store_raw(assoc, command, data):
    """Send one C-STORE request as these bytes are; the response, or None if none came."""
    from imaging.dicom.net.fast.wire import message_send

    assoc._reactor_checkpoint.clear()  # as send_c_store: the requestor's reactor must not take the response
    while not assoc._is_paused:
        time.sleep(0.001)
    try:
        message_send(assoc.dimse, assoc.accepted_contexts[0].context_id, command, data)
        _context_id, response = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    return response


# What dcmtk will send of them: it sends no file whose SOP Class UID it cannot find (a UN one
# included) nor one it cannot parse, and re-encodes what it reads (an odd length comes out even).
DCMTK_CASES = [
    (case_good, "Success"),
    (case_long_uid_in_command_and_data, "Error: DataSetDoesNotMatchSOPClass"),
    (case_long_study_uid, "Error: DataSetDoesNotMatchSOPClass"),
    (case_good, "Success"),
]


def test_dcmtk_sending_malformed_files_hears_a_status_for_each_and_the_association_goes_on(
    storescu_modality, dicom_listener, celery_worker, storage_root, tmp_path
):
    files = [case(tmp_path) for case, _answer in DCMTK_CASES]
    result = subprocess.run(
        [tool_required("/usr/bin/storescu"), "-v", "--no-halt", "-aet", "STORESCU", "-aec", "VETPACS",
         "127.0.0.1", str(dicom_listener.port), *map(str, files)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    log = result.stdout + result.stderr
    answers = [line.split("Received Store Response (", 1)[1].rstrip(")")
               for line in log.splitlines() if "Received Store Response" in line]  # fmt: skip
    assert answers == [answer for _case, answer in DCMTK_CASES], log
    assert "Releasing Association" in log and "Abort" not in log
    wait_for(lambda: Instance.objects.count() >= 2, message="the two good ones indexed")
    good = [path for path, (case, _answer) in zip(files, DCMTK_CASES, strict=True) if case is case_good]
    indexed = Instance.objects.values_list("sop_instance_uid", flat=True)
    assert sorted(indexed) == sorted(map(sop_instance_uid_of, good))
