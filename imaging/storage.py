"""Where DICOM objects are kept: Django's default storage (local disk or S3), written durably.

A DICOM success status promises the object is kept (DESIGN: rules that hold everywhere), so a
local write is fsynced, file and folder, before the listener answers. S3's PUT is durable when
it returns.
"""
import os
import uuid

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.utils.timezone import now


class DurableFileSystemStorage(FileSystemStorage):
    """FileSystemStorage whose saves survive a power cut once they return."""

    def _save(self, name, content):
        name = super()._save(name, content)
        path = self.path(name)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        directory = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(directory)  # the new directory entry, too
        finally:
            os.close(directory)
        return name


def instance_key(sop_instance_uid, received=None):
    """A new, never reused key: by day received (what the sweep lists), then the UID."""
    received = received or now()
    return f"dicom/{received:%Y/%m/%d}/{sop_instance_uid}.{uuid.uuid4().hex[:12]}.dcm"


def object_put(key, data):
    saved = default_storage.save(key, ContentFile(data))
    if saved != key:  # storages rename instead of overwriting; our keys are unique
        raise OSError(f"storage renamed {key} to {saved}")
    return saved


def object_get(key):
    with default_storage.open(key, "rb") as handle:
        return handle.read()


def object_delete(key):
    default_storage.delete(key)


def keys_under(prefix):
    """Every key below ``prefix`` (a folder), recursively."""
    folders, files = default_storage.listdir(prefix)
    for name in files:
        yield f"{prefix}/{name}"
    for folder in folders:
        yield from keys_under(f"{prefix}/{folder}")
