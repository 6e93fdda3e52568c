"""Where DICOM objects are kept: Django's default storage (local disk or S3), written durably.

A DICOM success status promises the object is kept (DESIGN: rules that hold everywhere), so a
local write is fsynced, file and folder, before the listener answers. S3's PUT is durable when
it returns.

An object that arrives in pieces (a C-STORE's data set fragments) can be written as it arrives
(``object_writer``): on local disk the pieces go to ``<key>.part`` while the rest is still on
the wire, and ``commit`` makes the whole durable under its key.
"""

import ctypes
import ctypes.util
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import IO, Any, Protocol, cast

from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage
from django.core.files.storage import default_storage as default_storage  # index.py, thumbnails.py ask it too
from django.utils.timezone import now


class DurableFileSystemStorage(FileSystemStorage):
    """FileSystemStorage whose saves survive a power cut once they return.

    A save creates the file exclusively (O_EXCL: our keys are never reused, so a name that
    exists already is an error, not a reason to pick another), writes it, fsyncs it, and
    fsyncs the folder that got the new entry, and the parent of any folder it had to create.
    That is the whole C-STORE write: Django's generic path (existence check, makedirs, a lock,
    chmod, then reopening the file to fsync it) cost more than the write itself.
    """

    # IO[Any], as Storage.save has it: Django hands a storage text files as well as binary ones.
    def save(self, name: str | None, content: IO[Any], max_length: int | None = None) -> str:
        """Storage.save, with its file name check (pathlib, three times an image) done once
        and cheaply. self.path() (safe_join) refuses a name outside the root all the same."""
        if name is None:
            name = content.name
        if not hasattr(content, "chunks"):
            content = File(content, name)
        parts = name.replace("\\", "/").split("/")
        if os.path.isabs(name) or ".." in parts or parts[-1] in ("", "."):
            raise SuspiciousFileOperation(f"Detected path traversal attempt in {name!r}")
        # A File, or duck-typed as one (chunks), as Storage.save checks above.
        return self._save(self.get_available_name(name, max_length), cast("File[Any]", content))

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        if max_length is not None and len(name) > max_length:
            raise SuspiciousFileOperation(f"Storage can not find an available filename for {name!r}.")
        return name  # _save refuses an existing name

    def _save(self, name: str, content: "File[Any]") -> str:  # File is generic in the stubs only
        if hasattr(content, "temporary_file_path"):  # an upload on disk already: Django moves it
            # django-stubs leave out the private Storage._save, which FileSystemStorage has.
            name = super()._save(name, content)  # type: ignore[misc]
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

    def _folders_make(self, folder: str) -> None:
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

    def writer(self, name: str) -> "DurableFileWriter":
        """A DurableFileWriter for ``name``: an object that arrives in pieces (object_writer)."""
        return DurableFileWriter(self, name)


# sync_file_range(2) (Linux): start writing a range to disk now, without waiting for it
# (SYNC_FILE_RANGE_WRITE), so that the fsync at the end finds little left to write. Python's os
# module has no binding for it.
_SYNC_FILE_RANGE_WRITE = 2


def _libc_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).sync_file_range
    except (OSError, AttributeError):  # not Linux, or no libc to be found
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return function


_sync_file_range = _libc_sync_file_range()
PART = ".part"  # an object being written: never indexed, removed if it is never committed
WRITE_BEHIND = 1 << 20  # bytes written before the disk is asked to start on them


class DurableFileWriter:
    """An object written in pieces to ``<name>.part`` (made exclusively, like a save), then
    ``commit``: fsync, rename to ``name``, fsync the folder. ``abort`` removes the part.
    Each megabyte is handed to the disk as soon as it is written (sync_file_range), so the
    disk works while the rest arrives, and the fsync that makes the object durable is short."""

    def __init__(self, storage: DurableFileSystemStorage, name: str) -> None:
        self.storage, self.name = storage, name
        self.path = storage.path(name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        self.fd: int | None  # None once committed or aborted
        try:
            self.fd = os.open(self.path + PART, flags, 0o666)
        except FileNotFoundError:
            storage._folders_make(os.path.dirname(self.path))
            self.fd = os.open(self.path + PART, flags, 0o666)
        self.size = self.synced = 0

    def _open_fd(self) -> int:
        if self.fd is None:
            raise ValueError(f"{self.name} is committed or aborted already")
        return self.fd

    def write(self, data: bytes | memoryview) -> None:
        fd = self._open_fd()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        self.size += len(data)
        if _sync_file_range is not None and self.size - self.synced >= WRITE_BEHIND:
            _sync_file_range(fd, self.synced, self.size - self.synced, _SYNC_FILE_RANGE_WRITE)
            self.synced = self.size

    def commit(self) -> str:
        self.sync()
        self.publish()
        _fsync_path(os.path.dirname(self.path))  # the new name, and the part's gone
        return self.name

    def sync(self) -> None:
        """The part's bytes on disk (fsync), the file closed; aborted if that fails."""
        try:
            fd = self._open_fd()
            if self.storage.file_permissions_mode is not None:
                os.fchmod(fd, self.storage.file_permissions_mode)
            os.fsync(fd)
        except BaseException:
            self.abort()
            raise
        os.close(fd)
        self.fd = None

    def publish(self) -> None:
        """The synced part renamed to its key; durable once its folder is fsynced."""
        try:
            if os.path.exists(self.path):  # as a save: a key is never reused, never overwritten
                raise FileExistsError(f"{self.path} exists already")
            os.rename(self.path + PART, self.path)
        except BaseException:
            os.unlink(self.path + PART)
            raise

    def abort(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        try:
            os.unlink(self.path + PART)
        except FileNotFoundError:
            pass


class BufferedWriter:
    """The same calls for a storage that takes a whole object at once (S3): the pieces are kept
    in memory and saved on ``commit``."""

    def __init__(self, name: str) -> None:
        self.name, self.size = name, 0
        self.pieces: list[bytes] = []

    def write(self, data: bytes | memoryview) -> None:
        self.pieces.append(bytes(data))
        self.size += len(data)

    def commit(self) -> str:
        data, self.pieces = b"".join(self.pieces), []
        return object_put(self.name, data)

    def abort(self) -> None:
        self.pieces = []


class ObjectWriter(Protocol):
    """What object_writer returns (DurableFileWriter, BufferedWriter)."""

    def write(self, data: bytes | memoryview) -> None: ...

    def commit(self) -> str: ...

    def abort(self) -> None: ...


# Parts fsynced at once by objects_commit: on ext4 (and XFS) concurrent fsyncs are answered by
# one journal commit, where the same fsyncs one after the other wait for one commit each.
COMMIT_THREADS = 8


def objects_commit(writers: "Sequence[ObjectWriter]") -> list[str | Exception]:
    """Commit several objects written in pieces (object_writer) together: each one's key, or
    the error that kept it from being durable (its part removed; only a failed folder fsync
    leaves the object under its key, unacknowledged, as ``commit`` leaves it then). Each
    returned key is durable as ``commit`` makes it: its bytes fsynced, renamed to its key, and
    its folder fsynced after the rename, once for all the objects in that folder. For a sender
    answered once for many objects (a web upload), against a C-STORE's one answer per object,
    whose commits cannot wait for each other."""
    results: list[str | Exception] = [""] * len(writers)
    on_disk = [i for i, writer in enumerate(writers) if isinstance(writer, DurableFileWriter)]
    for i, writer in enumerate(writers):
        if not isinstance(writer, DurableFileWriter):  # a whole object's storage (S3): its PUT is durable
            try:
                results[i] = writer.commit()
            except Exception as error:
                results[i] = error

    def sync(i: int) -> None:
        writer = cast(DurableFileWriter, writers[i])
        try:
            writer.sync()
            writer.publish()
            results[i] = writer.name
        except Exception as error:
            results[i] = error

    if on_disk:
        with ThreadPoolExecutor(min(COMMIT_THREADS, len(on_disk))) as pool:
            list(pool.map(sync, on_disk))
    folders: dict[str, list[int]] = {}
    for i in on_disk:
        if not isinstance(results[i], Exception):
            folders.setdefault(os.path.dirname(cast(DurableFileWriter, writers[i]).path), []).append(i)
    for folder, members in folders.items():
        try:
            _fsync_path(folder)
        except Exception as error:  # renamed but not durable: not to be acknowledged
            for i in members:
                results[i] = error
    return results


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def instance_key(sop_instance_uid: str, received: datetime | None = None) -> str:
    """A new, never reused key: by day received (what the sweep lists), then the UID."""
    received = received or now()
    return f"dicom/{received:%Y/%m/%d}/{sop_instance_uid}.{uuid.uuid4().hex[:12]}.dcm"


def day_prefixes(days: int) -> list[str]:
    """The folders of the objects received in the last ``days`` days (instance_key's), today's first."""
    today = now()
    return [f"dicom/{today - timedelta(days=n):%Y/%m/%d}" for n in range(days)]


def key_sop_instance_uid(key: str) -> str:
    """The SOP Instance UID an instance_key was made for (``.../<uid>.<12 hex>.dcm``)."""
    return key.rsplit("/", 1)[-1].rsplit(".", 2)[0]


def object_put(key: str, data: bytes) -> str:
    saved = default_storage.save(key, ContentFile(data))
    if saved != key:  # storages rename instead of overwriting; our keys are unique
        raise OSError(f"storage renamed {key} to {saved}")
    return saved


def object_writer(key: str) -> ObjectWriter:
    """A writer for an object that arrives in pieces: ``write(piece)``, then ``commit()`` (durable
    under ``key`` once it returns) or ``abort()``."""
    if isinstance(default_storage, DurableFileSystemStorage):
        return default_storage.writer(key)
    return BufferedWriter(key)


def object_get(key: str) -> bytes:
    with default_storage.open(key, "rb") as handle:
        data: bytes = handle.read()  # Storage.open's File[Any]: bytes or str as the mode says
        return data


def object_delete(key: str) -> None:
    default_storage.delete(key)


def folder_exists(prefix: str) -> bool:
    """Whether anything is stored below ``prefix``. S3 has no folders: its ``exists`` asks for
    an object of that very name, which is never there, so a listing answers instead."""
    if isinstance(default_storage, FileSystemStorage):
        return default_storage.exists(prefix)
    folders, files = default_storage.listdir(prefix)
    return bool(folders or files)


def keys_under(prefix: str, *, parts: bool = False) -> Iterator[str]:
    """Every key below ``prefix`` (a folder), recursively; with ``parts``, the part files
    (objects being written, or never finished) instead."""
    folders, files = default_storage.listdir(prefix)
    for name in files:
        if name.endswith(PART) == parts:
            yield f"{prefix}/{name}"
    for folder in folders:
        yield from keys_under(f"{prefix}/{folder}", parts=parts)
