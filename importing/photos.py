"""Photos and video from endoscopes, cameras and phones, wrapped as DICOM objects and kept
through the same durable receive and ingest as a C-STORE (imaging/ingest/receive.py).

``photo_wrap`` makes the object: VL Photographic Image or VL Endoscopic Image for a still
(PS3.3 A.33.4, A.32.1), Video Photographic or Video Endoscopic Image for an MP4 (A.32.7,
A.32.5), with the animal's Patient module (imaging/dicom/records/datasets.py, as the worklist
writes it), in the order's study when an order is given (so the index links it to the order
by its accession number), else in one study per visit, else a study of its own.

What is stored as it came (no re-compression, PS3.5 8.2):
- a sequential 8-bit JPEG with subsampled chroma (what cameras and phones write): its bytes are
  the one fragment of the Pixel Data, JPEG Baseline 1.2.840.10008.1.2.4.50 (SOF0) or Extended
  .51 (SOF1), Photometric Interpretation YBR_FULL_422 (PS3.5 8.2.1) or MONOCHROME2;
- an H.264 MP4 whose profile and level fit one of the AVC transfer syntaxes: the whole MP4
  file is the one fragment (PS3.5 8.2.7: "One fragment shall contain the whole MPEG-4 AVC/H.264
  bit stream"; the container "shall be ... MPEG-4, a.k.a. MP4").
A phone photo whose EXIF Orientation is not 1 (DICOM viewers do not read EXIF) is turned upright
by jpegtran in the DCT domain (``-perfect``, settings.PHOTO_JPEGTRAN) and still stored as it came
otherwise; where jpegtran is absent or cannot turn it perfectly, it is decoded and turned.
What is decoded to uncompressed pixels, Explicit VR Little Endian (lossless from the decoded
image, never re-compressed; every receiver and viewer reads it without a codec, so a send never
transcodes it): PNG and HEIC (there is no transfer syntax for a HEIF still; pillow-heif decodes
it, applying its own rotation), the JPEGs no JPEG transfer syntax carries as they are:
progressive (its transfer syntax .55 is retired, PS3.5 A.4.1), 4:4:4 colour (YBR_FULL is not a
photometric interpretation the VL IODs allow, PS3.3 C.8.12.1.1.1), CMYK or Adobe RGB, and the
turned JPEGs jpegtran could not turn. A JPEG or HEIC so decoded keeps Lossy Image Compression
01: it was lossy once (PS3.3 C.7.6.1.1.5). Derivation Description (C.7.6.1) says what was done.
"""

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from PIL import ImageOps
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from imaging.dicom.records.datasets import patient_attributes
from imaging.ingest.index import Sender
from imaging.ingest.queueing import IngestBatch
from imaging.ingest.receive import ObjectRefused, instance_receive
from imaging.models import ImagingOrder, Study
from importing import photos_media as media
from importing.photos_media import Unreadable
from patients.models import Patient, Visit
from vetclinic.audit.services import Actor
from vetclinic.clock import localnow

Kind = Literal["photo", "endoscopy"]
KINDS = ("photo", "endoscopy")

VL_ENDOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.1"
VIDEO_ENDOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"
VIDEO_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4.1"
# (still, video) SOP classes and the modality of each kind (PS3.3 C.7.3.1.1.1: ES endoscopy,
# XC external-camera photography).
SOP_CLASSES = {"photo": (VL_PHOTOGRAPHIC, VIDEO_PHOTOGRAPHIC), "endoscopy": (VL_ENDOSCOPIC, VIDEO_ENDOSCOPIC)}
MODALITY = {"photo": "XC", "endoscopy": "ES"}
SERIES_NUMBER = {"photo": 900, "endoscopy": 910}

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
AVC_HP41 = "1.2.840.10008.1.2.4.102"  # High Profile / Level 4.1 (PS3.5 8.2.7)
AVC_HP42_2D = "1.2.840.10008.1.2.4.104"  # High Profile / Level 4.2 for 2D video (PS3.5 8.2.8)
# H.264 profiles a High Profile decoder decodes (H.264 A.2): Main, High, and Constrained
# Baseline (Baseline with constraint_set1_flag, the 0x40 bit of profile_compatibility).
HIGH, MAIN, BASELINE = 100, 77, 66

# Anatomic Region Sequence (PS3.3 C.8.12.1.1: required in the endoscopic IODs): the regions an
# endoscope or otoscope looks at in animals, SNOMED CT codes of PS3.16 CID 4040 and CID 4031.
REGIONS = {
    "esophagus": ("32849002", "Esophagus"),
    "stomach": ("69695003", "Stomach"),
    "duodenum": ("38848004", "Duodenum"),
    "colon": ("71854001", "Colon"),
    "rectum": ("34402009", "Rectum"),
    "larynx": ("4596009", "Larynx"),
    "trachea": ("44567001", "Trachea"),
    "bronchus": ("955009", "Bronchus"),
    "nasal-cavity": ("279549004", "Nasal cavity"),
    "ear-canal": ("84301002", "External auditory canal"),
    "bladder": ("89837001", "Urinary bladder"),
}

RECEIVED_FROM = "UPLOAD"  # the index's "received from" for what staff upload (an AE title is 16 chars)
PHOTO_MAX_BYTES_DEFAULT = 500 * 1024 * 1024


class PhotoRefused(Exception):
    """A file that was not stored (nothing of it was); the message names the file and why."""

    def __init__(self, filename: str, reason: object) -> None:
        super().__init__(f"{filename}: {reason}")
        self.filename, self.reason = filename, str(reason)


def photo_max_bytes() -> int:
    return int(getattr(settings, "PHOTO_MAX_BYTES", PHOTO_MAX_BYTES_DEFAULT))


@dataclass
class Placement:
    """Where the objects of one upload go: the study (and its accession), a new series."""

    study_instance_uid: str
    accession_number: str = ""
    study_id: str = ""
    description: str = ""
    referring: str = ""
    admission_id: str = ""
    # A new series for the stills and another for the videos: one Series Number each.
    series_instance_uid: str = field(default_factory=lambda: _uid())
    video_series_instance_uid: str = field(default_factory=lambda: _uid())


def _uid() -> str:
    return str(generate_uid(prefix=f"{settings.DICOM_UID_ROOT}." if settings.DICOM_UID_ROOT else None))


def placement_for(patient: Patient, visit: Visit | None, order: ImagingOrder | None) -> Placement:
    """The order's study (the UID its images already have, else the one the worklist gave), so
    the ingest links the objects to the order by accession number; else the visit's photo
    study, the same for every upload of that visit (a UUID-derived UID, PS3.5 B.2, from a
    name that includes the site's secret: not guessable, not shared with another site); else a
    new study."""
    if order is not None and order.patient_id != patient.pk:
        raise ValueError("order: this order is not this animal's")
    if visit is not None and visit.patient_id != patient.pk:
        raise ValueError("visit: this visit is not this animal's")
    if order is not None and visit is not None and order.visit_id not in (None, visit.pk):
        raise ValueError("order: this order belongs to another visit")
    if order is not None:
        visit = visit or order.visit
        study = Study.objects.filter(order=order).order_by("pk").first()
        return Placement(
            study.study_instance_uid if study else order.study_instance_uid,
            order.accession_number or "",
            order.requested_procedure_id[:16],
            order.procedure.name[:64],
            order.referring_vet,
            str(visit.pk) if visit else "",
        )
    if visit is not None:
        name = f"{settings.SECRET_KEY}/vetpacs/visit-photos/{visit.pk}"
        return Placement(f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, name).int}", description="Photos",
                         admission_id=str(visit.pk))  # fmt: skip
    return Placement(_uid(), description="Photos")


def photo_wrap(
    data: bytes, filename: str, patient: Patient, visit: Visit | None = None, order: ImagingOrder | None = None,
    kind: Kind = "photo", actor: Actor | None = None, *, region: str = "", placement: Placement | None = None,
    number: int = 1,
) -> Dataset:  # fmt: skip
    """The DICOM object for one photo or video of ``patient`` (its file_meta says its transfer
    syntax). Raises PhotoRefused for a file that cannot be wrapped; ValueError for a visit or
    order that is not the animal's. ``placement`` shares one study and series among the files
    of an upload (photos_store); ``number`` is the Instance Number. ``region`` (a REGIONS key)
    is the region examined: required for endoscopy (PS3.3 C.8.12.1.1), optional for a photo."""
    _check(kind, region)
    if len(data) > photo_max_bytes():
        raise PhotoRefused(
            filename, f"too big ({len(data) / 2**20:.0f} MB; at most {photo_max_bytes() / 2**20:.0f} MB)"
        )
    placement = placement or placement_for(patient, visit, order)
    try:
        what = media.kind_of(data)
        ds = _pixels_video(data, kind) if what == "mp4" else _pixels_still(data, what, kind)
    except Unreadable as error:
        raise PhotoRefused(filename, error) from None
    _header(ds, patient, placement, kind, number, filename)
    if region:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = (
            REGIONS[region][0],
            "SCT",
            REGIONS[region][1],
        )
        ds.AnatomicRegionSequence = [code]
        del ds.Laterality  # an unpaired region: Laterality absent (dciodvfy's reading of C.7.3.1's condition)
    return ds


def _check(kind: str, region: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind: one of {', '.join(KINDS)}")
    if region and region not in REGIONS:
        raise ValueError(f"region: one of {', '.join(REGIONS)}")
    if kind == "endoscopy" and not region:
        raise ValueError("region: choose the region examined (DICOM requires it for endoscopy)")


def _pixels_still(data: bytes, what: str, kind: Kind) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = SOP_CLASSES[kind][0]
    frame = media.jpeg_frame(data) if what == "jpeg" else None  # a cut-off JPEG is named so
    image = media.image_decoded(data, what)  # decoded whatever it is: a damaged file fails here
    exif = image.getexif()
    ds.Manufacturer = str(exif.get(0x010F, "")).strip("\x00 ")[:64]  # EXIF Make
    ds.ManufacturerModelName = str(exif.get(0x0110, "")).strip("\x00 ")[:64]  # EXIF Model
    taken = str(exif.get_ifd(0x8769).get(0x9003, "") or exif.get(0x0132, ""))  # DateTimeOriginal, DateTime
    if len(taken) >= 19 and taken[:4].isdigit():
        ds.AcquisitionDateTime = taken[:19].replace(":", "").replace(" ", "")
    orientation = exif.get(0x0112, 1)  # EXIF Orientation: DICOM viewers do not read it
    orientation = orientation if orientation in media.ORIENTATION_TURNS else 1
    turned = None
    if frame is not None and orientation != 1 and _as_is(frame):
        turned = media.jpeg_turned(data, orientation, getattr(settings, "PHOTO_JPEGTRAN", ""))
        turned_frame = media.jpeg_frame(turned) if turned is not None else None
        # A 4:2:2 JPEG turned by 90 degrees is 4:4:0, which YBR_FULL_422 does not describe:
        # it is decoded below instead.
        if turned is not None and turned_frame is not None and _as_is(turned_frame):
            data, frame = turned, turned_frame
        else:
            turned = None
    if frame is not None and _as_is(frame) and (orientation == 1 or turned is not None):
        ds.file_meta = _meta(JPEG_BASELINE if frame.process == media.SOF_BASELINE else JPEG_EXTENDED)
        _image_pixel(ds, frame.rows, frame.columns, frame.components,
                     "MONOCHROME2" if frame.components == 1 else "YBR_FULL_422")  # fmt: skip
        _lossy(ds, "ISO_10918_1", frame.rows * frame.columns * frame.components / len(data))
        if turned is not None:
            ds.DerivationDescription = (
                f"EXIF Orientation {orientation}: {media.ORIENTATION_TURNS[orientation][1]} losslessly "
                "(jpegtran -perfect, the JPEG's coefficients moved, not re-compressed)"
            )
        ds.PixelData = encapsulate([data])  # one frame, one fragment (PS3.5 A.4)
        ds["PixelData"].VR = "OB"
        return ds
    # Decoded and stored uncompressed, Explicit VR Little Endian: lossless from the decoded
    # image, and every receiver and viewer reads it as it is (a send never has to transcode it).
    done = f"decoded from {what.upper()}, stored uncompressed"
    if orientation != 1:
        image = ImageOps.exif_transpose(image)
        done += f"; EXIF Orientation {orientation}: {media.ORIENTATION_TURNS[orientation][1]}"
    ds.DerivationDescription = done[0].upper() + done[1:]
    grey = image.mode in ("1", "L", "LA", "I;16", "I")
    pixels = np.asarray(image.convert("L" if grey else "RGB"), dtype=np.uint8)
    ds.file_meta = _meta(ExplicitVRLittleEndian)
    _image_pixel(ds, image.height, image.width, 1 if grey else 3, "MONOCHROME2" if grey else "RGB")
    if what == "jpeg" or what == "heic":  # lossy once, lossy for ever (PS3.3 C.7.6.1.1.5)
        _lossy(ds, "ISO_10918_1" if what == "jpeg" else "ISO_23008_2", None)
    else:
        ds.LossyImageCompression = "00"
    raw = pixels.tobytes()
    ds.PixelData = raw + b"\x00" * (len(raw) % 2)  # even length (PS3.5 7.1.1)
    ds["PixelData"].VR = "OB"
    return ds


def _as_is(frame: media.JpegFrame) -> bool:
    """A JPEG a JPEG transfer syntax carries as it is: sequential 8-bit, grey or YCbCr with
    horizontally subsampled chroma (YBR_FULL_422, PS3.5 8.2.1)."""
    return (
        frame.bits == 8
        and frame.process in (media.SOF_BASELINE, media.SOF_EXTENDED)
        and (
            frame.components == 1
            or (frame.components == 3 and frame.subsampled and frame.adobe_transform != 0)
        )
    )


def _video_syntax(video: media.Video) -> str:
    """The AVC transfer syntax whose profile, level and size the stream fits (PS3.5 8.2.7,
    8.2.8: High Profile Level 4.1 up to 1920x1080; Level 4.2 for 2D video), else refused."""
    decodable = video.profile in (HIGH, MAIN) or (video.profile == BASELINE and video.constraints & 0x40)
    if not decodable:
        raise Unreadable(
            f"the H.264 profile ({video.profile}) is not one DICOM stores as it is "
            "(High, Main or Constrained Baseline, 8-bit 4:2:0)"
        )
    if video.columns > 1920 or video.rows > 1080:
        raise Unreadable(f"the video is {video.columns}x{video.rows}; DICOM stores H.264 up to 1920x1080")
    if video.level <= 41:
        return AVC_HP41
    if video.level == 42:
        return AVC_HP42_2D
    raise Unreadable(
        f"the H.264 level is {video.level / 10:.1f}; DICOM stores levels up to 4.2 (record at 1080p)"
    )


def _pixels_video(data: bytes, kind: Kind) -> Dataset:
    video = media.mp4_video(data)
    ds = Dataset()
    ds.SOPClassUID = SOP_CLASSES[kind][1]
    ds.file_meta = _meta(_video_syntax(video))
    ds.Manufacturer = ds.ManufacturerModelName = ""
    _image_pixel(ds, video.rows, video.columns, 3, "YBR_PARTIAL_420")  # PS3.5 8.2.7's requirements
    # Multi-frame and Cine modules (PS3.3 C.7.6.6, C.7.6.5): frames and their timing.
    ds.NumberOfFrames = video.frames
    ds.FrameIncrementPointer = Tag("FrameTime")
    ds.FrameTime = f"{video.frame_time_ms:.4f}"[:16]
    ds.CineRate = max(1, round(1000 / video.frame_time_ms))
    ds.FrameDelay = "0"
    _lossy(ds, "ISO_14496_10", None)
    ds.PixelData = encapsulate([data])  # the whole MP4 in one fragment (PS3.5 8.2.7)
    ds["PixelData"].VR = "OB"
    return ds


def _meta(transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = UID(transfer_syntax)
    return meta


def _image_pixel(ds: Dataset, rows: int, columns: int, samples: int, photometric: str) -> None:
    """Image Pixel module (PS3.3 C.7.6.3), 8 bits unsigned, as the VL Image module requires
    (C.8.12.1)."""
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, samples
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if samples > 1:
        ds.PlanarConfiguration = 0


def _lossy(ds: Dataset, method: str, ratio: float | None) -> None:
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = method
    if ratio:
        ds.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]


def _header(
    ds: Dataset, patient: Patient, placement: Placement, kind: Kind, number: int, filename: str
) -> None:
    moment = localnow()
    date, time = moment.strftime("%Y%m%d"), moment.strftime("%H%M%S")
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: animal and owner names are not all ASCII
    for element in patient_attributes(patient):  # the Patient module as the worklist writes it
        ds[element.tag] = element
    # General Study (C.7.2.1), Patient Study (C.7.2.2).
    ds.StudyInstanceUID = placement.study_instance_uid
    ds.StudyDate, ds.StudyTime = date, time
    ds.ReferringPhysicianName = placement.referring
    ds.StudyID = placement.study_id
    ds.AccessionNumber = placement.accession_number
    if placement.description:
        ds.StudyDescription = placement.description
    if placement.admission_id:
        ds.AdmissionID = placement.admission_id  # the visit
    # General Series (C.7.3.1), General Equipment (C.7.5.1).
    ds.Modality = MODALITY[kind]
    video = "NumberOfFrames" in ds
    ds.SeriesInstanceUID = placement.video_series_instance_uid if video else placement.series_instance_uid
    ds.SeriesNumber = SERIES_NUMBER[kind] + video
    ds.SeriesDescription = ("Endoscopy" if kind == "endoscopy" else "Photos") + (" video" if video else "")
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.Laterality = ""  # Type 2C: a paired structure's side, unknown for a photo of no named region
    # General Image (C.7.6.1), Acquisition Context (C.7.6.14: empty, Type 2), VL Image (C.8.12.1).
    ds.InstanceNumber = number
    ds.PatientOrientation = ""
    ds.ContentDate, ds.ContentTime = date, time
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ImageComments = filename[:10240]
    ds.AcquisitionContextSequence = []
    ds.BurnedInAnnotation = "NO"
    # SOP Common (C.12.1).
    ds.SOPInstanceUID = _uid()
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def data_set_bytes(ds: Dataset) -> bytes:
    """The data set (no File Meta) in its transfer syntax: Explicit VR Little Endian encoding,
    the encapsulated ones included (PS3.5 A.4)."""
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_dataset(out, ds)
    return out.getvalue()


@dataclass
class PhotoResult:
    filename: str
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    transfer_syntax: str = ""
    study_instance_uid: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value or key == "filename"}


def _sender(actor: Actor) -> Sender:
    user = actor.user if isinstance(actor.user, User) else None
    return {
        "channel": actor.channel,
        "name": actor.name or (user.get_username() if user is not None else ""),
        "user_id": user.pk if user is not None else None,
    }


def photos_store(
    files: list[tuple[str, bytes]], *, patient: Patient, visit: Visit | None = None,
    order: ImagingOrder | None = None, kind: Kind = "photo", region: str = "", actor: Actor,
    batch: IngestBatch | None = None,
) -> list[PhotoResult]:  # fmt: skip
    """Wrap and store each (filename, bytes): one new series in the study placement_for picks.
    Each file is stored whole or not at all (the receive commits an object only once all of it
    is written: storage.object_writer); one file's error does not stop the others. ValueError
    (a visit or order not the animal's, an unknown kind) stops all before anything is stored."""
    _check(kind, region)
    placement = placement_for(patient, visit, order)
    own = batch is None  # one indexing task for the upload, queued once all is stored
    batch = IngestBatch(size=1000, age=3600) if batch is None else batch
    try:
        return _files_store(files, patient, visit, order, kind, region, actor, batch, placement)
    finally:
        if own:
            batch.flush()


def _files_store(
    files: list[tuple[str, bytes]], patient: Patient, visit: Visit | None, order: ImagingOrder | None, kind: Kind,
    region: str, actor: Actor, batch: IngestBatch, placement: Placement,
) -> list[PhotoResult]:  # fmt: skip
    results, number = [], 0
    for filename, data in files:
        try:
            ds = photo_wrap(data, filename, patient, visit, order, kind, actor, region=region,
                            placement=placement, number=number + 1)  # fmt: skip
            instance_receive(
                source=data_set_bytes(ds), transfer_syntax=ds.file_meta.TransferSyntaxUID,
                sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
                calling_ae=RECEIVED_FROM, batch=batch, sender=_sender(actor),
            )  # fmt: skip
        except PhotoRefused as refused:
            results.append(PhotoResult(filename, error=refused.reason))
            continue
        except ObjectRefused as refused:
            results.append(PhotoResult(filename, error=f"not stored: {refused.detail}"))
            continue
        number += 1
        results.append(PhotoResult(filename, str(ds.SOPInstanceUID), str(ds.SOPClassUID),
                                   str(ds.file_meta.TransferSyntaxUID), placement.study_instance_uid))  # fmt: skip
    return results
