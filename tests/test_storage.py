"""Durable storage on local disk (imaging/ingest/storage.py): an object written in pieces."""

import pytest

from imaging.ingest import storage


def test_a_committed_object_refuses_more_pieces_and_stays_as_committed(storage_root):
    writer = storage.object_writer("dicom/2026/01/02/1.2.3.dcm")
    writer.write(b"first ")
    writer.write(memoryview(b"second"))
    assert writer.commit() == "dicom/2026/01/02/1.2.3.dcm"

    with pytest.raises(ValueError, match="committed or aborted already"):
        writer.write(b"third")
    with pytest.raises(ValueError, match="committed or aborted already"):
        writer.commit()
    assert storage.object_get("dicom/2026/01/02/1.2.3.dcm") == b"first second"
    assert not list(storage_root.rglob("*.part"))


def test_an_aborted_object_refuses_more_pieces_and_leaves_nothing(storage_root):
    writer = storage.object_writer("dicom/2026/01/02/4.5.6.dcm")
    writer.write(b"first")
    writer.abort()

    with pytest.raises(ValueError, match="committed or aborted already"):
        writer.write(b"second")
    assert not [path for path in storage_root.rglob("*") if path.is_file()]
