"""Photos and video wrapped as DICOM objects (importing/photos.py): stored through the same
durable receive and ingest as a C-STORE, checked with dicom3tools' dciodvfy, indexed on the
right animal (and the order's study), retrieved over WADO-RS as stored."""

import io
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageOps
from pydicom.encaps import generate_frames

from imaging.archive.tasks import metadata_keep_task
from imaging.ingest import storage
from imaging.ingest.tasks import instances_ingest
from imaging.models import Instance, Study
from importing.photos import AVC_HP41, JPEG_BASELINE, photo_wrap, photos_store
from importing.photos_media import kind_of
from tests.conftest import tool_required
from tests.test_dicomweb_wado import Collected, key, web  # noqa: F401  # fixtures

DATA = Path(__file__).parent / "data"
# 10 frames of 64x48 at 25 frames/s, H.264 High Profile level 4.1, no audio (tests/data/README.md).
MP4 = (DATA / "photos_tiny_h264.mp4").read_bytes()


def jpeg(size=(40, 30), colour=(200, 30, 10), **options):
    out = io.BytesIO()
    image = Image.new("RGB", size, colour)
    image.paste((10, 120, 240), (0, 0, size[0] // 2, size[1] // 2))
    image.save(out, "JPEG", **options)
    return out.getvalue()


def phone_jpeg(size, orientation, subsampling=2):
    """A photo as a phone held upright writes it: the sensor's landscape pixels and an EXIF
    Orientation saying how to turn them; three quadrants of different colours, so that any
    wrong turn shows."""
    image = Image.new("RGB", size, (200, 30, 10))
    image.paste((10, 120, 240), (0, 0, size[0] // 2, size[1] // 2))
    image.paste((20, 200, 40), (size[0] // 2, size[1] // 2, size[0], size[1]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes(), subsampling=subsampling, quality=90)
    return out.getvalue()


def upright(data):
    """What the photo looks like upright: Pillow's reading of its EXIF Orientation."""
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")).astype(int)


def png(size=(41, 31)):
    pixels = np.arange(size[0] * size[1] * 3, dtype=np.uint8).reshape(size[1], size[0], 3)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "PNG")
    return out.getvalue(), pixels


def validation_errors(ds, tmp_path):
    """dciodvfy's errors for the object as a Part 10 file (its warnings are advice)."""
    tool = tool_required("/usr/bin/dciodvfy")
    path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    run = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    output = run.stdout + run.stderr
    assert ds.SOPClassUID.name.replace(" Storage", "").replace(" ", "") in output  # it knew the IOD
    return [line for line in output.splitlines() if line.startswith("Error")]


@pytest.fixture
def animal(reference_data, make_patient, make_owner):
    return make_patient(name="Pepper", owner=make_owner("Hartley", given_name="Ann"))


def stored(results):
    """Index what photos_store received, as the worker does; the instances, in upload order."""
    return [
        Instance.objects.select_related("series__study").get(sop_instance_uid=r.sop_instance_uid)
        for r in results
    ]


@pytest.fixture
def store(storage_root, actor):
    def store_files(files, **options):
        batch = Collected()
        results = photos_store(files, actor=actor, batch=batch, **options)
        instances_ingest(batch.messages)
        metadata_keep_task(
            [
                i.pk
                for i in Instance.objects.filter(storage_key__in=[m["storage_key"] for m in batch.messages])
            ]
        )
        return results

    return store_files


def test_a_jpeg_becomes_a_valid_photo_on_the_animal_in_the_orders_study_as_it_came(
    animal,
    make_order,
    store,
    web,
    tmp_path,  # noqa: F811
):
    order = make_order(animal)
    data = jpeg()
    (result,) = store([("dog.jpg", data)], patient=animal, order=order)
    assert not result.error
    (instance,) = stored([result])
    study = instance.series.study
    assert study.patient_id == animal.pk and study.order_id == order.pk
    assert study.study_instance_uid == order.study_instance_uid
    ds = pydicom.dcmread(io.BytesIO(storage.object_get(instance.storage_key)))
    assert ds.file_meta.TransferSyntaxUID == JPEG_BASELINE
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.4"  # VL Photographic Image
    assert (ds.PatientName, ds.PatientID) == ("Hartley^Pepper", animal.patient_id)
    assert ds.PatientSpeciesDescription == animal.species.meaning and ds.ResponsiblePerson == "Hartley^Ann"
    assert ds.AccessionNumber == order.accession_number
    assert (ds.PhotometricInterpretation, ds.LossyImageCompression) == ("YBR_FULL_422", "01")
    (fragment,) = generate_frames(ds.PixelData, number_of_frames=1)
    assert fragment.rstrip(b"\x00") == data  # the JPEG's own bytes: no re-compression
    assert validation_errors(ds, tmp_path) == []
    # WADO-RS gives it back as stored (JPEG asked for as it is).
    got = web.retrieve_instance(study.study_instance_uid, instance.series.series_instance_uid,
                                instance.sop_instance_uid, media_types=(("application/dicom", "*"),))  # fmt: skip
    assert got.file_meta.TransferSyntaxUID == JPEG_BASELINE
    assert next(generate_frames(got.PixelData, number_of_frames=1)).rstrip(b"\x00") == data


def test_a_png_becomes_uncompressed_rgb_with_the_same_pixels(animal, store, tmp_path):
    data, pixels = png()
    (result,) = store([("wound.png", data)], patient=animal)
    (instance,) = stored([result])
    ds = pydicom.dcmread(io.BytesIO(storage.object_get(instance.storage_key)))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert (ds.PhotometricInterpretation, ds.Rows, ds.Columns, ds.LossyImageCompression) == (
        "RGB",
        31,
        41,
        "00",
    )
    assert np.array_equal(ds.pixel_array, pixels)
    assert instance.series.study.patient_id == animal.pk  # linked by Patient ID, name and species
    assert validation_errors(ds, tmp_path) == []


def test_an_mp4_becomes_a_video_endoscopic_image_with_its_frames_as_it_came(
    animal, make_order, store, tmp_path
):
    order = make_order(animal)
    (result,) = store([("scope.mp4", MP4)], patient=animal, order=order, kind="endoscopy", region="stomach")
    assert not result.error
    (instance,) = stored([result])
    ds = pydicom.dcmread(io.BytesIO(storage.object_get(instance.storage_key)))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.1.1"  # Video Endoscopic Image
    assert ds.file_meta.TransferSyntaxUID == AVC_HP41
    assert (ds.NumberOfFrames, float(ds.FrameTime), ds.CineRate, ds.Rows, ds.Columns) == (
        10,
        40.0,
        25,
        48,
        64,
    )
    assert ds.PhotometricInterpretation == "YBR_PARTIAL_420" and ds.Modality == "ES"
    assert ds.AnatomicRegionSequence[0].CodeValue == "69695003"
    (fragment,) = generate_frames(ds.PixelData, number_of_frames=1)
    assert fragment[: len(MP4)] == MP4 and not fragment[len(MP4) :].strip(b"\x00")
    assert instance.series.study.order_id == order.pk and instance.number_of_frames == 10
    assert validation_errors(ds, tmp_path) == []


def test_a_progressive_jpeg_is_decoded_not_recompressed_and_stays_marked_lossy(animal, actor, tmp_path):
    ds = photo_wrap(jpeg(progressive=True), "p.jpg", animal, actor=actor)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert (ds.PhotometricInterpretation, ds.LossyImageCompression) == ("RGB", "01")
    assert np.array_equal(
        ds.pixel_array, np.asarray(Image.open(io.BytesIO(jpeg(progressive=True))).convert("RGB"))
    )
    assert validation_errors(ds, tmp_path) == []


def test_photos_of_one_visit_share_one_study(animal, actor):
    from patients.services import visit_create

    visit = visit_create(actor=actor, patient=animal, reason="Check-up")
    first = photo_wrap(jpeg(), "a.jpg", animal, visit=visit, actor=actor)
    second = photo_wrap(png()[0], "b.png", animal, visit=visit, actor=actor)
    other = photo_wrap(jpeg(), "c.jpg", animal, actor=actor)
    assert first.StudyInstanceUID == second.StudyInstanceUID != other.StudyInstanceUID
    assert first.AdmissionID == str(visit.pk)


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("cut.jpg", jpeg()[:-200], "cut off"),
        ("notes.jpg", b"Pepper's wound, day 3: healing well.\n" * 10, "not a JPEG, PNG, HEIC or MP4"),
        ("cut.mp4", MP4[:-300], "cut off"),
        ("phone.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "HEIC"),
    ],
)
def test_what_cannot_be_read_gets_a_clear_error_and_nothing_is_stored(
    animal, store, storage_root, name, data, says
):
    good, bad = store([("good.jpg", jpeg()), (name, data)], patient=animal)
    assert not good.error and good.sop_instance_uid
    assert says in bad.error and not bad.sop_instance_uid
    assert Instance.objects.count() == 1  # the good one only
    assert len([p for p in storage_root.rglob("*") if p.is_file()]) == 1


def test_a_file_over_the_limit_is_refused(animal, store, settings):
    settings.PHOTO_MAX_BYTES = 1000
    (result,) = store([("big.jpg", jpeg(size=(400, 300)))], patient=animal)
    assert "too big" in result.error and Instance.objects.count() == 0


def test_another_animals_order_or_an_endoscopy_without_region_is_refused_before_anything(
    animal, make_patient, make_order, store
):
    other = make_order(make_patient(name="Rex"))
    with pytest.raises(ValueError, match="order"):
        store([("a.jpg", jpeg())], patient=animal, order=other)
    with pytest.raises(ValueError, match="region"):
        store([("a.jpg", jpeg())], patient=animal, kind="endoscopy")
    assert Instance.objects.count() == 0 and Study.objects.count() == 0


def test_a_heic_from_a_phone_is_decoded_and_stored_losslessly_as_a_valid_photo(animal, store, tmp_path):
    import pillow_heif

    pillow_heif.register_heif_opener()
    image = Image.new("RGB", (64, 48), (200, 30, 10))
    image.paste((10, 120, 240), (0, 0, 32, 24))
    out = io.BytesIO()
    image.save(out, "HEIF", quality=90)  # HEVC-coded, as an iPhone writes (libheif + x265)
    data = out.getvalue()
    assert kind_of(data) == "heic"
    (result,) = store([("IMG_0001.HEIC", data)], patient=animal)
    assert not result.error
    (instance,) = stored([result])
    ds = pydicom.dcmread(io.BytesIO(storage.object_get(instance.storage_key)))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.4"  # VL Photographic Image
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"  # Explicit VR Little Endian
    assert (ds.PatientName, ds.PatientID, ds.PatientSpeciesDescription) == (
        "Hartley^Pepper",
        animal.patient_id,
        animal.species.meaning,
    )
    assert (ds.PhotometricInterpretation, ds.Rows, ds.Columns) == ("RGB", 48, 64)
    # HEVC was lossy: it stays marked so (PS3.3 C.7.6.1.1.5); the decoded pixels are kept exactly.
    assert (ds.LossyImageCompression, ds.LossyImageCompressionMethod) == ("01", "ISO_23008_2")
    assert ds.DerivationDescription == "Decoded from HEIC, stored uncompressed"
    assert np.array_equal(ds.pixel_array, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    assert np.abs(ds.pixel_array.astype(int) - np.asarray(image).astype(int)).mean() < 8  # it is the photo
    assert instance.series.study.patient_id == animal.pk
    assert validation_errors(ds, tmp_path) == []


def test_a_portrait_phone_jpeg_is_turned_upright_losslessly_by_jpegtran(animal, store, tmp_path, settings):
    settings.PHOTO_JPEGTRAN = tool_required("/usr/bin/jpegtran")
    data = phone_jpeg((64, 48), orientation=6)  # 4:2:0, 16x16 MCUs: a perfect turn exists
    (result,) = store([("portrait.jpg", data)], patient=animal)
    (instance,) = stored([result])
    ds = pydicom.dcmread(io.BytesIO(storage.object_get(instance.storage_key)))
    assert ds.file_meta.TransferSyntaxUID == JPEG_BASELINE  # still the JPEG, not decoded
    assert (ds.Rows, ds.Columns, ds.PhotometricInterpretation) == (64, 48, "YBR_FULL_422")
    assert "EXIF Orientation 6: turned 90 degrees clockwise losslessly (jpegtran" in ds.DerivationDescription
    (fragment,) = generate_frames(ds.PixelData, number_of_frames=1)
    fragment = fragment[: fragment.rindex(b"\xff\xd9") + 2]
    assert Image.open(io.BytesIO(fragment)).getexif()[0x0112] == 1  # nothing turns it twice
    want = upright(data)
    got = ds.pixel_array.astype(int)
    assert got.shape == want.shape == (64, 48, 3)
    assert np.abs(got - want).mean() < 2  # the same image (two JPEG decoders' rounding apart)
    assert np.abs(got - want[::-1, ::-1]).mean() > 30  # and not turned the other way
    assert validation_errors(ds, tmp_path) == []


@pytest.mark.parametrize(
    ("size", "subsampling", "jpegtran", "why"),
    [
        ((40, 30), 2, "/usr/bin/jpegtran", "not a multiple of the 16x16 MCU: no perfect turn"),
        ((64, 48), 1, "/usr/bin/jpegtran", "4:2:2 turned is 4:4:0, which YBR_FULL_422 is not"),
        ((64, 48), 2, "", "no jpegtran (a clinic machine with Python only)"),
    ],
)
def test_a_portrait_phone_jpeg_jpegtran_cannot_turn_is_decoded_turned_and_stored_losslessly(
    animal, store, tmp_path, settings, size, subsampling, jpegtran, why
):
    settings.PHOTO_JPEGTRAN = tool_required(jpegtran) if jpegtran else ""
    data = phone_jpeg(size, orientation=6, subsampling=subsampling)
    (result,) = store([("portrait.jpg", data)], patient=animal)
    (instance,) = stored([result])
    ds = pydicom.dcmread(io.BytesIO(storage.object_get(instance.storage_key)))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1", why
    assert (ds.Rows, ds.Columns, ds.LossyImageCompression) == (size[0], size[1], "01")
    assert ds.DerivationDescription == (
        "Decoded from JPEG, stored uncompressed; EXIF Orientation 6: turned 90 degrees clockwise"
    )
    assert np.array_equal(ds.pixel_array, upright(data))  # exactly the upright image
    assert validation_errors(ds, tmp_path) == []


def test_a_jpeg_shot_upright_is_kept_byte_for_byte(animal, actor, settings):
    settings.PHOTO_JPEGTRAN = tool_required("/usr/bin/jpegtran")
    data = phone_jpeg((64, 48), orientation=1)
    ds = photo_wrap(data, "a.jpg", animal, actor=actor)
    assert next(generate_frames(ds.PixelData, number_of_frames=1)).rstrip(b"\x00") == data
    assert "DerivationDescription" not in ds


def test_a_portrait_heic_is_stored_upright(animal, actor, tmp_path):
    """A phone's portrait HEIC: pillow-heif writes the turn as the HEIF's own rotation (irot)
    and applies it when decoding, so the stored pixels are upright."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    data = phone_jpeg((64, 48), orientation=6)
    shot = Image.open(io.BytesIO(data))
    out = io.BytesIO()
    shot.save(out, "HEIF", quality=95, exif=shot.getexif().tobytes())
    ds = photo_wrap(out.getvalue(), "IMG_0002.HEIC", animal, actor=actor)
    assert (ds.Rows, ds.Columns) == (64, 48)
    got = ds.pixel_array.astype(int)
    assert np.abs(got - upright(data)).mean() < 8  # upright (HEVC's loss apart)
    assert np.abs(got - upright(data)[::-1, ::-1]).mean() > 30  # not turned the other way
    assert validation_errors(ds, tmp_path) == []
