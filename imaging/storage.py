"""Where DICOM objects are kept: Django's default storage (local disk or S3), written durably.

A DICOM success status promises the object is kept (DESIGN: rules that hold everywhere), so a
local write is fsynced, file and folder, before the listener answers. S3's PUT is durable when
it returns.
"""
import os
import uuid

from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, default_storage
from django.utils.timezone import now


class DurableFileSystemStorage(FileSystemStorage):
    """FileSystemStorage whose saves survive a power cut once they return.

    A save creates the file exclusively (O_EXCL: our keys are never reused, so a name that
    exists already is an error, not a reason to pick another), writes it, fsyncs it, and
    fsyncs the folder that got the new entry, and the parent of any folder it had to create.
    That is the whole C-STORE write: Django's generic path (existence check, makedirs, a lock,
    chmod, then reopening the file to fsync it) cost more than the write itself.
    """

    def save(self, name, content, max_length=None):
        """Storage.save, with its file name check (pathlib, three times an image) done once
        and cheaply. self.path() (safe_join) refuses a name outside the root all the same."""
        if name is None:
            name = content.name
        if not hasattr(content, "chunks"):
            content = File(content, name)
        parts = name.replace("\\", "/").split("/")
        if os.path.isabs(name) or ".." in parts or parts[-1] in ("", "."):
            raise SuspiciousFileOperation(f"Detected path traversal attempt in {name!r}")
        return self._save(self.get_available_name(name, max_length), content)

    def get_available_name(self, name, max_length=None):
        if max_length is not None and len(name) > max_length:
            raise SuspiciousFileOperation(f"Storage can not find an available filename for {name!r}.")
        return name  # _save refuses an existing name

    def _save(self, name, content):
        if hasattr(content, "temporary_file_path"):  # an upload on disk already: Django moves it
            name = super()._save(name, content)
            _fsync_path(self.path(name))
            _fsync_path(os.path.dirname(self.path(name)))
            return name
        path = self.path(name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileNotFoundError:
            self._folders_make(os.path.dirname(path))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            for chunk in content.chunks():
                view = memoryview(chunk.encode() if isinstance(chunk, str) else chunk)
                while view:
                    view = view[os.write(fd, view) :]
            if self.file_permissions_mode is not None:
                os.fchmod(fd, self.file_permissions_mode)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(path)  # no partial object left for the sweep to find
            raise
        os.close(fd)
        _fsync_path(os.path.dirname(path))  # the new directory entry, too
        return name

    def _folders_make(self, folder):
        """Create ``folder`` and any missing parents, each made durable in its parent."""
        parent = os.path.dirname(folder)
        if not os.path.isdir(parent):
            self._folders_make(parent)
        mode = self.directory_permissions_mode
        try:
            os.mkdir(folder, 0o777 if mode is None else mode)
        except FileExistsError:  # made meanwhile by another thread, which may not have synced it yet
            if not os.path.isdir(folder):
                raise FileExistsError(f"{folder} exists and is not a directory.") from None
        else:
            if mode is not None:
                os.chmod(folder, mode)  # mkdir's mode is subject to the umask
        _fsync_path(parent)


def _fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
