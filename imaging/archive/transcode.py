"""A stored instance as it was stored, or in a transfer syntax the peer can read.

The archive sends an object as it was received when the peer accepts that transfer syntax
(nothing re-encoded, byte for byte). When it does not (a workstation offering only the
uncompressed syntaxes, PS3.5 10.1: Implicit VR Little Endian is the one every peer supports),
the object is decompressed (pydicom with the pylibjpeg plugins: JPEG baseline, extended,
lossless, JPEG-LS, JPEG 2000, RLE) and sent uncompressed: never refused because the peer cannot
decode what the modality sent (PS3.4 C.4.2.3.1, C.4.3.3.1: the SCP may convert the transfer
syntax). The SOP Instance UID stays: the object is the same, only its encoding differs.

Used by C-MOVE and C-GET (imaging/dicom/net/) and WADO-RS (integrations/dicomweb/).
"""

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels.encoders.base import JPEG2000LosslessEncoder, RLELosslessEncoder
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from imaging.ingest.storage import default_storage

# Uncompressed syntaxes we convert to, the peer's preferred first: explicit VR keeps the VRs.
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
COPY_CHUNK = 1 << 20
# The video transfer syntaxes (MPEG2, MPEG-4 AVC/H.264, HEVC/H.265: PS3.5 8.2.5-8.2.8, with the
# fragmentable ones): the encapsulated value is one bitstream holding every frame, which nothing
# here decodes (PS3.18 8.7.3.3.2: a video's frames are sent as the whole bitstream).
VIDEO_SYNTAXES = frozenset(
    f"1.2.840.10008.1.2.4.{number}{fragmentable}" for number in range(100, 109) for fragmentable in ("", ".1")
) - {"1.2.840.10008.1.2.4.107.1", "1.2.840.10008.1.2.4.108.1"}

# Compressed syntaxes we can write any image in without losing anything (pydicom's encoders,
# where their plugins are installed): a peer that accepts only one of these still gets every
# object (PS3.4 C.4.3.3.1: the SCP may convert the transfer syntax). No lossy ones, ever.
LOSSLESS_ENCODABLE = tuple(
    str(encoder.UID) for encoder in (RLELosslessEncoder, JPEG2000LosslessEncoder) if encoder.is_available
)


class CannotTranscode(Exception):
    """The stored object cannot be decoded (no decoder for its transfer syntax, or it is
    corrupt): the message says which; adapters answer with a failure for this object only."""


def syntax_choose(stored: str, accepted: Iterable[str], *, compress: bool = False) -> str | None:
    """The transfer syntax to send an object stored in ``stored`` to a peer that accepts
    ``accepted``: as stored if it may, else an uncompressed one it accepts, else (``compress``)
    one of LOSSLESS_ENCODABLE it accepts, else None."""
    accepted = [str(uid) for uid in accepted]
    if stored in accepted:
        return stored
    writable = UNCOMPRESSED + (LOSSLESS_ENCODABLE if compress else ())
    return next((str(uid) for uid in writable if uid in accepted), None)


@contextmanager
def instance_path(storage_key: str) -> Iterator[str]:
    """A local file holding the stored object: its own file on local disk; from S3, a temporary
    copy streamed to disk a megabyte at a time (never the whole object in memory)."""
    try:
        yield default_storage.path(storage_key)
        return
    except NotImplementedError:  # a storage with no local files (S3)
        pass
    with tempfile.NamedTemporaryFile(suffix=".dcm") as copy:
        with default_storage.open(storage_key, "rb") as source:
            shutil.copyfileobj(source, copy, COPY_CHUNK)
        copy.flush()
        yield copy.name


def dataset_transcoded(path: str, syntax: str) -> Dataset:
    """The object at ``path`` read whole and made ready to encode in ``syntax`` (an uncompressed
    one, its own, or one of LOSSLESS_ENCODABLE). Raises CannotTranscode."""
    try:
        dataset = dcmread(path)
        stored = UID(dataset.file_meta.TransferSyntaxUID)
        if stored == syntax:
            return dataset
        if UID(syntax).is_compressed and syntax not in LOSSLESS_ENCODABLE:
            raise CannotTranscode(f"cannot compress into {UID(syntax).name}; only decompress")
        if stored.is_compressed:
            # as_rgb: a YBR JPEG becomes RGB, as PS3.5 8.2.1 asks of a decompressed JPEG.
            dataset.decompress(as_rgb=True, generate_instance_uid=False)
        if UID(syntax).is_compressed:  # lossless: the same pixels (PS3.5 8.2.3, 8.2.4, G)
            dataset.compress(UID(syntax), generate_instance_uid=False)
        dataset.file_meta.TransferSyntaxUID = UID(syntax)
        return dataset
    except CannotTranscode:
        raise
    except Exception as error:  # pydicom's and the decoders' errors are many: each says what failed
        raise CannotTranscode(f"cannot decode the stored object: {error}") from error
