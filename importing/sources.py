"""What an upload holds, as files to receive: loose files and folders as they came, a ZIP's
members, and the files a CD's DICOMDIR lists (PS3.10 8: a File-set's directory, its records
walked as PS3.3 F.3 links them). No database and no storage: the files are laid out in a temporary folder
(``file_lay``) and ``candidates`` says which to receive and which are refused, and why."""

import os
import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import IO, NamedTuple

from pydicom import dcmread
from pydicom.dataset import Dataset

from imaging.ingest.part10 import NotPart10, file_meta_read

ZIP_MAGIC = b"PK\x03\x04"
DICOMDIR = "DICOMDIR"  # PS3.10 8.6: the directory file's name, in a File-set's root
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # a DICOMDIR's SOP Class (PS3.4 Annex F)
COPY_PIECE = 1 << 20


class Candidate(NamedTuple):
    name: str  # as the sender named it: its path in the folder, a ZIP member after the ZIP's name
    path: Path


class Refused(NamedTuple):
    name: str
    reason: str


def name_safe(name: str) -> PurePosixPath | None:
    """A sender's relative path (a folder's webkitRelativePath, a ZIP member), kept inside the
    upload's folder: no root, no '..', no drive; None when nothing is left of it."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..") and ":" not in p]
    return PurePosixPath(*parts) if parts else None


def file_lay(root: Path, name: str, source: IO[bytes] | Path) -> Path | None:
    """Put one uploaded file at its relative path under ``root`` (a DICOMDIR names the files it
    lists by their paths from it); None for a name that is no path."""
    relative = name_safe(name)
    if relative is None:
        return None
    target = root / relative
    while target.exists():  # two files sent under one name: both are kept, the second renamed
        target = target.with_name(target.name + "_")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, Path):
        shutil.move(source, target)
    else:
        with open(target, "wb") as out:
            shutil.copyfileobj(source, out, COPY_PIECE)
    return target


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == ZIP_MAGIC


def _zip_open(path: Path, name: str, root: Path, most_file: int, room: int) -> tuple[list[Refused], int]:
    """Unpack a ZIP beside itself, into '<name>.d'; each member no larger than ``most_file``
    and all of them within ``room`` bytes, counted as they are written (a member's declared
    size may lie: a ZIP bomb). The refused members, and the bytes written."""
    refused: list[Refused] = []
    written = 0
    folder = path.with_name(path.name + ".d")
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if member.is_dir():
                    continue
                member_name = f"{name}/{member.filename}"
                relative = name_safe(member.filename)
                if relative is None:
                    refused.append(Refused(member_name, "Not a file name"))
                    continue
                if member.flag_bits & 0x1:
                    refused.append(Refused(member_name, "Encrypted in the ZIP: it cannot be read"))
                    continue
                target = folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                size = 0
                try:
                    with archive.open(member) as source, open(target, "wb") as out:
                        while piece := source.read(COPY_PIECE):
                            size += len(piece)
                            if size > most_file or written + size > room:
                                raise _TooLarge
                            out.write(piece)
                except _TooLarge:
                    target.unlink()
                    refused.append(Refused(member_name, _too_large(most_file if size > most_file else room)))
                    continue
                except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
                    target.unlink(missing_ok=True)
                    refused.append(Refused(member_name, f"Cannot be unpacked from the ZIP: {error}"))
                    continue
                written += size
    except (zipfile.BadZipFile, OSError) as error:
        refused.append(Refused(name, f"Not a readable ZIP: {error}"))
    return refused, written


class _TooLarge(Exception):
    pass


def _too_large(most: int) -> str:
    return f"Larger than the {most // 1024**2} MB allowed"


def _shown(path: Path, root: Path) -> str:
    """A file's name as the sender knows it: a ZIP member's after the ZIP's own name."""
    return "/".join(part[:-2] if part.endswith(".zip.d") else part for part in path.relative_to(root).parts)


def _is_directory(path: Path) -> bool:
    """A DICOMDIR under another name (a copy, a backup): an index of a File-set, not an object
    to archive."""
    try:
        with open(path, "rb") as handle:
            return file_meta_read(handle).sop_class_uid == MEDIA_STORAGE_DIRECTORY
    except (NotPart10, OSError):
        return False


# PS3.3 F.3.2.2: the offsets (from the file's first byte) that link a DICOMDIR's records.
FIRST_RECORD = 0x00041200  # Offset of the First Directory Record of the Root Directory Entity
NEXT_RECORD = 0x00041400  # Offset of the Next Directory Record (a sibling)
LOWER_RECORD = 0x00041420  # Offset of Referenced Lower-Level Directory Entity (the first child)
REFERENCED_FILE_ID = 0x00041500


def directory_files(path: Path) -> list[Path]:
    """The files a DICOMDIR lists (its records' Referenced File IDs, PS3.10 8.2: the path from
    the File-set's root, one component a value), in the order of its hierarchy (PS3.3 F.3:
    each entity's records from the first, by their next-record offsets, each record's lower
    level before its next sibling), then any record with a file that the hierarchy leaves out,
    in the order written, as pydicom's FileSet reads them (which costs more than the import of
    the files it lists). ValueError for what is no DICOMDIR or a File ID that leaves the folder."""
    ds = dcmread(path)
    if ds.file_meta.get("MediaStorageSOPClassUID") != MEDIA_STORAGE_DIRECTORY:
        raise ValueError("its File Meta does not name the Media Storage Directory SOP Class")
    records: dict[int, Dataset] = {}
    for record in ds.get("DirectoryRecordSequence") or []:
        records[record.seq_item_tell] = record
    ordered: list[Dataset] = []
    seen: set[int] = set()

    def entity(offset: int) -> None:  # an entity's records, each followed by its lower level
        while offset and offset not in seen:
            record = records.get(offset)
            if record is None:
                raise ValueError(f"a record's offset {offset} points at no record")
            seen.add(offset)
            ordered.append(record)
            lower = record.get(LOWER_RECORD)
            if lower is not None and lower.value:
                entity(lower.value)
            offset = record[NEXT_RECORD].value if NEXT_RECORD in record else 0

    first = ds.get(FIRST_RECORD)
    entity(first.value if first is not None and records else 0)
    ordered += [record for offset, record in records.items() if offset not in seen]
    root = path.parent
    listed: list[Path] = []
    for record in ordered:
        element = record.get(REFERENCED_FILE_ID)
        if element is None or not element.value:
            continue
        components = [element.value] if isinstance(element.value, str) else list(element.value)
        relative = name_safe("/".join(components))
        if relative is None or len(relative.parts) != len(components):
            file_id = "\\".join(components)  # PS3.10 8.5: written with backslashes between
            raise ValueError(f"the File ID {file_id!r} is not a path inside its folder")
        listed.append(root.joinpath(*relative.parts))
    return list(dict.fromkeys(listed))


def _files(root: Path) -> Iterable[Path]:
    for folder, folders, names in os.walk(root):
        folders.sort()
        for file_name in sorted(names):
            yield Path(folder) / file_name


def candidates(root: Path, *, most_file: int, most_total: int) -> tuple[list[Candidate], list[Refused]]:
    """The files under ``root`` to receive, and those refused. ZIPs are unpacked first (one
    level: a ZIP in a ZIP is refused). A DICOMDIR's listed files come in its order; a listed
    file that is not there is refused; the DICOMDIR itself is not an image and is not kept.
    Any other file is a candidate too: the receive refuses what is not DICOM."""
    refused: list[Refused] = []
    total = sum(path.stat().st_size for path in _files(root))
    for path in list(_files(root)):
        if _is_zip(path):
            name = path.relative_to(root).as_posix()
            more, written = _zip_open(path, name, root, most_file, max(0, most_total - total))
            refused += more
            total += written
            path.unlink()
    listed: list[Path] = []
    directories: set[Path] = set()
    for path in _files(root):
        if path.name.upper() != DICOMDIR:
            continue
        directories.add(path)
        try:
            paths = directory_files(path)
        except Exception as error:  # pydicom raises many kinds on a broken directory
            refused.append(Refused(_shown(path, root), f"Not a readable DICOMDIR: {error}"))
            continue
        for listed_path in paths:
            if listed_path.is_file():
                listed.append(listed_path)
            else:
                refused.append(
                    Refused(_shown(listed_path, root), "Listed in the DICOMDIR but not in the upload")
                )
    seen = set(listed)
    others = [p for p in _files(root) if p not in seen and p not in directories]
    found: list[Candidate] = []
    listed_set = set(listed)
    for path in listed + others:
        name = _shown(path, root)
        # (Each file is opened only when it must be: the ZIPs sent were unpacked and removed
        # above, so only a ZIP's member can still be one; a file a DICOMDIR lists is no DICOMDIR.)
        if any(part.endswith(".zip.d") for part in path.relative_to(root).parts[:-1]) and _is_zip(path):
            refused.append(Refused(name, "A ZIP inside a ZIP: unpack the outer one and send the inner"))
        elif path not in listed_set and _is_directory(path):
            refused.append(Refused(name, "A DICOMDIR not named DICOMDIR: an index, not an image"))
        elif path.stat().st_size > most_file:
            refused.append(Refused(name, _too_large(most_file)))
        else:
            found.append(Candidate(name, path))
    return found, refused
