"""WADO-RS rendered and thumbnail resources (PS3.18 10.4.1.1.3, 10.4.1.1.4), asked for by
dicomweb-client (and plain HTTP where it has no call) of a live server. The expected pictures are
computed here with numpy from the objects' stored values and the formulas of PS3.3 C.11.1
(rescale) and C.11.2.1.2 (the window functions), independently of the code under test."""

import io

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels.processing import apply_color_lut
from pydicom.uid import generate_uid

from imaging.ingest import storage
from imaging.ingest.thumbnails import series_thumbnail_render
from imaging.models import Instance, Series, Study
from integrations.api.clients import api_client_create
from vetclinic.audit.models import AuditEntry


@pytest.fixture
def key(transactional_db, actor):
    return api_client_create(actor=actor, name="Viewer", scopes=["studies:read"], rate_limit=100_000)[1]


@pytest.fixture
def dicomweb(live_server, key, storage_root):
    return DICOMwebClient(url=f"{live_server.url}/dicomweb", headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def http(live_server, key):
    """GET a /dicomweb/ path as the API client, with any headers."""

    def get(path, key=key, **headers):
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.get(f"{live_server.url}/dicomweb/{path}", headers={**auth, **headers}, timeout=30)

    return get


def sample(name, **changes):
    ds = dcmread(get_testdata_file(name))
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return ds


def store(ds, *, series=None, number=1):
    """``ds`` kept in storage and indexed (a new study and series unless ``series`` is given),
    as the ingest would have (tests/studies.py does the same for the study page)."""
    if series is None:
        study = Study.objects.create(study_instance_uid=generate_uid())
        series = Series.objects.create(study=study, series_instance_uid=generate_uid(), series_number=1)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = series.study.study_instance_uid, series.series_instance_uid
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    key = storage.instance_key(ds.SOPInstanceUID)
    storage.object_put(key, out.getvalue())
    image = "PixelData" in ds
    return Instance.objects.create(
        series=series, sop_instance_uid=ds.SOPInstanceUID, sop_class_uid=ds.SOPClassUID,
        transfer_syntax_uid=ds.file_meta.TransferSyntaxUID, instance_number=number,
        rows=ds.Rows if image else None, columns=ds.Columns if image else None,
        number_of_frames=int(ds.get("NumberOfFrames") or 1), file_size=len(out.getvalue()), storage_key=key,
    )  # fmt: skip


def uids(instance):
    return (
        instance.series.study.study_instance_uid,
        instance.series.series_instance_uid,
        instance.sop_instance_uid,
    )


def modality(ds, frame=None):
    """PS3.3 C.11.1.2: stored value x Rescale Slope + Rescale Intercept."""
    stored = (frame if frame is not None else ds.pixel_array).astype(np.float64)
    return stored * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


def windowed(x, center, width, function="linear"):
    """PS3.3 C.11.2.1.2.1 (linear), C.11.2.1.3.2 (linear exact), C.11.2.1.3.1 (sigmoid), into
    0..255, rounded."""
    if function == "linear":
        y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255
        y = np.where(
            x <= center - 0.5 - (width - 1) / 2, 0, np.where(x > center - 0.5 + (width - 1) / 2, 255, y)
        )
    elif function == "linear-exact":
        y = ((x - center) / width + 0.5) * 255
        y = np.where(x <= center - width / 2, 0, np.where(x > center + width / 2, 255, y))
    else:
        y = 255 / (1 + np.exp(-4 * (x - center) / width))
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def picture(data):
    return np.asarray(Image.open(io.BytesIO(data)))


def multipart(response):
    """The parts of a multipart/related body (RFC 2387): [(headers, body)]."""
    boundary = response.headers["Content-Type"].split("boundary=")[1].split(";")[0].strip('"').encode()
    assert response.content.endswith(b"--" + boundary + b"--\r\n")
    parts = []
    for chunk in response.content.split(b"--" + boundary)[1:-1]:
        head, _, body = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append((headers, body.removesuffix(b"\r\n")))
    return parts


@pytest.mark.parametrize("function", ["linear", "linear-exact", "sigmoid"])
def test_a_ct_rendered_as_png_is_rescaled_then_windowed_as_asked(dicomweb, function):
    # Its own window says otherwise: the request's wins (PS3.18 8.3.5.1.4).
    ds = sample("CT_small.dcm", RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=900, WindowWidth=50)
    instance = store(ds)

    png = dicomweb.retrieve_instance_rendered(
        *uids(instance), media_types=("image/png",), params={"window": f"40,400,{function}"}
    )

    assert png.startswith(b"\x89PNG")
    assert np.array_equal(picture(png), windowed(modality(ds), 40, 400, function))


def test_without_a_window_the_objects_own_is_used_and_jpeg_is_the_default(dicomweb, http):
    ds = sample("CT_small.dcm", WindowCenter=[100, 900], WindowWidth=[300, 50], VOILUTFunction="LINEAR")
    instance = store(ds)

    jpeg = dicomweb.retrieve_instance_rendered(*uids(instance))  # no Accept: the default

    expected = windowed(modality(ds), 100, 300).astype(np.int16)  # the first window (PS3.3 C.11.2.1.2)
    difference = np.abs(picture(jpeg).astype(np.int16) - expected)
    assert jpeg.startswith(b"\xff\xd8") and difference.mean() < 2 and np.percentile(difference, 99) < 12
    study, series, sop = uids(instance)
    worse = http(f"studies/{study}/series/{series}/instances/{sop}/rendered?quality=5", Accept="image/jpeg")
    assert worse.headers["Content-Type"] == "image/jpeg" and len(worse.content) < len(jpeg) / 2


def test_without_any_window_the_frames_own_range_is_shown(dicomweb):
    ds = sample("MR_small.dcm")
    for keyword in ("WindowCenter", "WindowWidth", "VOILUTSequence"):
        ds.pop(keyword, None)
    instance = store(ds)

    png = dicomweb.retrieve_instance_rendered(*uids(instance), media_types=("image/png",))

    x = modality(ds)
    expected = windowed(x, (x.min() + x.max()) / 2, x.max() - x.min(), "linear-exact")
    assert np.array_equal(picture(png), expected) and picture(png).min() == 0 and picture(png).max() == 255


def test_monochrome1_is_inverted(dicomweb):
    ds = sample("CT_small.dcm", PhotometricInterpretation="MONOCHROME1")
    instance = store(ds)

    png = dicomweb.retrieve_instance_rendered(
        *uids(instance), media_types=("image/png",), params={"window": "40,400"}
    )

    assert np.array_equal(picture(png), 255 - windowed(modality(ds), 40, 400))


@pytest.mark.parametrize(
    "name",
    ["SC_rgb_small_odd.dcm", "examples_rgb_color.dcm", "SC_rgb_rle.dcm", "SC_ybr_full_422_uncompressed.dcm"],
)
def test_rgb_is_drawn_as_it_is(dicomweb, name):
    ds = sample(name)
    instance = store(ds)

    png = dicomweb.retrieve_instance_rendered(
        *uids(instance),
        media_types=("image/png",),
        params={"window": "10,20"},  # no VOI for colour
    )

    expected = ds.pixel_array if ds.BitsStored == 8 else np.rint(ds.pixel_array / 65535 * 255)
    assert np.array_equal(picture(png), expected.astype(np.uint8))


def test_palette_colour_goes_through_its_palette(dicomweb):
    ds = sample("examples_palette.dcm")
    instance = store(ds)

    png = dicomweb.retrieve_instance_rendered(*uids(instance), media_types=("image/png",))

    rgb = apply_color_lut(ds.pixel_array, ds)  # PS3.3 C.7.6.3.1.5
    expected = rgb if rgb.dtype == np.uint8 else np.rint(rgb / 65535 * 255).astype(np.uint8)
    assert np.array_equal(picture(png), expected)


def test_a_ybr_jpeg_comes_out_rgb(dicomweb):
    ds = sample("SC_rgb_jpeg_dcmtk.dcm")  # JPEG baseline, YBR_FULL: bands of red, green, blue...
    instance = store(ds)

    png = picture(dicomweb.retrieve_instance_rendered(*uids(instance), media_types=("image/png",)))

    assert png.shape == (ds.Rows, ds.Columns, 3)
    assert np.abs(png.astype(int) - ds.pixel_array).mean() < 2  # pydicom's own YBR -> RGB
    red = png[ds.Rows // 20, ds.Columns // 2]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_a_jpeg_2000_instance_is_decoded_and_rendered(dicomweb):
    compressed = sample("MR_small_jp2klossless.dcm")
    instance = store(compressed)

    png = dicomweb.retrieve_instance_rendered(
        *uids(instance), media_types=("image/png",), params={"window": "600,1200"}
    )

    original = sample("MR_small.dcm")  # the same pixels, uncompressed: lossless
    assert np.array_equal(picture(png), windowed(modality(original), 600, 1200))


@pytest.fixture
def multiframe():
    """Three frames of CT_small, each different (frame n: the stored values minus 100 n)."""
    ds = sample("CT_small.dcm")
    frames = np.stack([ds.pixel_array - 100 * n for n in (1, 2, 3)]).astype(np.int16)
    ds.NumberOfFrames, ds.PixelData = 3, frames.tobytes()
    return store(ds), ds, frames


def test_a_frame_of_a_multiframe_instance(dicomweb, http, multiframe):
    instance, ds, frames = multiframe

    png = dicomweb.retrieve_instance_frames_rendered(
        *uids(instance), frame_numbers=[2], media_types=("image/png",), params={"window": "40,400"}
    )
    first = dicomweb.retrieve_instance_rendered(
        *uids(instance), media_types=("image/png",), params={"window": "40,400"}
    )

    assert np.array_equal(picture(png), windowed(modality(ds, frames[1]), 40, 400))
    assert np.array_equal(picture(first), windowed(modality(ds, frames[0]), 40, 400))
    study, series, sop = uids(instance)
    missing = http(f"studies/{study}/series/{series}/instances/{sop}/frames/4/rendered")
    assert missing.status_code == 404 and "3 frames" in missing.json()["error"]["message"]


def test_several_frames_are_a_multipart_body_or_one_gif(http, multiframe):
    instance, ds, frames = multiframe
    study, series, sop = uids(instance)
    path = f"studies/{study}/series/{series}/instances/{sop}"

    parts = multipart(
        http(f"{path}/frames/3,1/rendered?window=40,400", Accept='multipart/related; type="image/png"')
    )
    gif = http(f"{path}/rendered?window=40,400", Accept="image/gif")

    locations = [headers["Content-Location"] for headers, _ in parts]
    assert locations == [f"/dicomweb/{path}/frames/{n}/rendered" for n in (3, 1)]
    assert np.array_equal(picture(parts[0][1]), windowed(modality(ds, frames[2]), 40, 400))
    animation = Image.open(io.BytesIO(gif.content))
    assert gif.headers["Content-Type"] == "image/gif" and animation.n_frames == 3
    assert http(f"{path}/frames/1,2/rendered", Accept="image/jpeg").status_code == 406  # PS3.18 10.4.4


def test_the_viewport_scales_keeping_the_aspect_and_crops_and_flips(dicomweb, http):
    ds = sample("CT_small.dcm")
    instance = store(ds)
    study, series, sop = uids(instance)
    path = f"studies/{study}/series/{series}/instances/{sop}/rendered?window=40,400"

    small = dicomweb.retrieve_instance_rendered(*uids(instance), params={"viewport": "64,32"})
    large = picture(http(f"{path}&viewport=300,256", Accept="image/png").content)
    region = picture(http(f"{path}&viewport=50,20,10,30,50,20", Accept="image/png").content)
    flipped = picture(http(f"{path}&viewport=50,20,10,30,-50,20", Accept="image/png").content)

    assert picture(small).shape == (32, 32) and large.shape == (256, 256)
    expected = windowed(modality(ds), 40, 400)[30:50, 10:60]
    assert np.array_equal(region, expected) and np.array_equal(flipped, expected[:, ::-1])


def test_a_bad_parameter_is_a_400_naming_it(http):
    instance = store(sample("CT_small.dcm"))
    study, series, sop = uids(instance)
    path = f"studies/{study}/series/{series}/instances/{sop}"

    for query, parameter in (
        ("window=abc,400,linear", "window"),
        ("window=40,0,linear", "window"),
        ("window=40,400,cubic", "window"),
        ("window=40", "window"),
        ("viewport=0,10", "viewport"),
        ("viewport=10,10,1,2", "viewport"),
        ("viewport=a,b", "viewport"),
        ("quality=0", "quality"),
        ("quality=101", "quality"),
        ("quality=high", "quality"),
        ("annotation=everything", "annotation"),
        ("iccprofile=cmyk", "iccprofile"),
    ):
        for resource in ("rendered", "thumbnail"):
            response = http(f"{path}/{resource}?{query}")
            assert response.status_code == 400, (resource, query)
            assert list(response.json()["error"]["fields"]) == [parameter], (resource, query)


def test_annotation_and_the_icc_profile_are_accepted_and_ignored(http):
    instance = store(sample("CT_small.dcm"))
    study, series, sop = uids(instance)

    response = http(
        f"studies/{study}/series/{series}/instances/{sop}/rendered?annotation=patient,technique&iccprofile=no"
    )

    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"


def test_the_media_type_comes_from_accept_or_the_accept_parameter_and_an_unknown_one_is_a_406(http):
    instance = store(sample("CT_small.dcm"))
    study, series, sop = uids(instance)
    path = f"studies/{study}/series/{series}/instances/{sop}/rendered"

    preferred = http(path, Accept="image/jpeg;q=0.5, image/png")
    by_parameter = http(f"{path}?accept=image/gif", Accept="image/jpeg")
    refused = http(path, Accept="image/jp2")

    assert preferred.headers["Content-Type"] == "image/png" and preferred.content.startswith(b"\x89PNG")
    assert by_parameter.headers["Content-Type"] == "image/gif" and by_parameter.content.startswith(b"GIF8")
    assert refused.status_code == 406 and "image/png" in refused.json()["error"]["message"]


def test_a_series_and_a_study_are_multipart_with_each_image(dicomweb, http):
    first = store(sample("CT_small.dcm"))
    second = store(sample("MR_small.dcm"), series=first.series, number=2)
    store(sample("test-SR.dcm"), series=first.series, number=3)  # a report: nothing to draw
    study, series, _ = uids(first)

    body = dicomweb.retrieve_series_rendered(study, series)  # no Accept: multipart JPEG
    parts = multipart(http(f"studies/{study}/rendered", Accept='multipart/related; type="image/png"'))

    assert body.count(b"Content-Type: image/jpeg") == 2
    assert [picture(data).shape for _, data in parts] == [(128, 128), (64, 64)]
    assert [headers["Content-Location"] for headers, _ in parts] == [
        f"/dicomweb/studies/{study}/series/{series}/instances/{i.sop_instance_uid}/rendered"
        for i in (first, second)
    ]
    single = http(f"studies/{study}/rendered", Accept="image/jpeg")  # PS3.18 10.4.4: not for a study
    assert single.status_code == 406 and "multipart/related" in single.json()["error"]["message"]


def test_unknown_uids_are_404_and_a_report_cannot_be_rendered(http):
    instance = store(sample("CT_small.dcm"))
    report = store(sample("test-SR.dcm"), series=instance.series, number=2)
    study, series, sop = uids(instance)

    for path in (
        f"studies/{generate_uid()}/rendered",
        f"studies/{study}/series/{generate_uid()}/rendered",
        f"studies/{study}/series/{series}/instances/{generate_uid()}/rendered",
        f"studies/{study}/series/{series}/instances/{generate_uid()}/thumbnail",
        f"studies/{generate_uid()}/thumbnail",
    ):
        response = http(path)
        assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found"), path
    response = http(f"studies/{study}/series/{series}/instances/{report.sop_instance_uid}/rendered")
    assert response.status_code == 406 and "no pixel data" in response.json()["error"]["message"]
    assert http(f"studies/{study}/series/{series}/instances/{sop}/frames/x/rendered").status_code == 400


def test_it_needs_a_key_with_studies_read_and_is_audited(http, actor):
    instance = store(sample("CT_small.dcm"))
    study, series, sop = uids(instance)
    path = f"studies/{study}/series/{series}/instances/{sop}/rendered"
    _, other = api_client_create(actor=actor, name="Billing", scopes=["patients:read"])

    assert http(path, key=None).status_code == 401
    assert http(f"studies/{study}/thumbnail", key=None).status_code == 401
    assert http(path, key=other).status_code == 403
    assert http(path).status_code == 200

    entry = AuditEntry.objects.get(action="rendered")
    assert (entry.actor, entry.channel, entry.object_id) == ("Viewer", "api", str(instance.series.study_id))
    assert entry.changes == {
        "resource": [f"studies/{study}/series/{series}/instances/{sop}"],
        "instances": [1],
    }


def test_the_series_and_study_thumbnail_is_the_one_drawn_at_ingest(http):
    first = store(sample("CT_small.dcm", WindowCenter=0, WindowWidth=100))
    store(sample("CT_small.dcm", WindowCenter=50, WindowWidth=100), series=first.series, number=2)
    store(sample("CT_small.dcm", WindowCenter=100, WindowWidth=100), series=first.series, number=3)
    study, series, _ = uids(first)

    drawn = http(f"studies/{study}/series/{series}/thumbnail", Accept="image/png").content  # none kept yet
    key = series_thumbnail_render(series_id=first.series_id)
    drawn_at_ingest = storage.object_get(key)
    storage.object_delete(key)  # a different picture under the kept key: served as it is
    storage.object_put(key, marker := encoded(Image.new("L", (8, 8), 77), "PNG"))
    kept = http(f"studies/{study}/series/{series}/thumbnail", Accept="image/png").content
    of_study = http(f"studies/{study}/thumbnail", Accept="image/png").content
    as_jpeg = http(f"studies/{study}/thumbnail")

    middle = sample("CT_small.dcm")
    assert np.array_equal(picture(drawn), windowed(modality(middle), 50, 100))  # the middle image
    assert np.array_equal(picture(drawn_at_ingest), picture(drawn))  # the same drawing at ingest
    assert kept == of_study == marker
    assert (
        as_jpeg.headers["Content-Type"] == "image/jpeg"
        and np.abs(picture(as_jpeg.content).astype(int) - 77).max() < 3
    )
    assert AuditEntry.objects.filter(action="thumbnail").count() == 4


def encoded(image, kind):
    out = io.BytesIO()
    image.save(out, kind)
    return out.getvalue()


def test_an_instance_thumbnail_fits_192_pixels_and_a_frame_thumbnail_is_that_frame(http, multiframe):
    instance, ds, frames = multiframe
    study, series, sop = uids(instance)

    middle = picture(
        http(f"studies/{study}/series/{series}/instances/{sop}/thumbnail", Accept="image/png").content
    )
    third = picture(
        http(
            f"studies/{study}/series/{series}/instances/{sop}/frames/3/thumbnail", Accept="image/png"
        ).content
    )
    small = http(f"studies/{study}/series/{series}/instances/{sop}/thumbnail?viewport=32,32")

    x = modality(ds, frames[1])
    assert np.array_equal(middle, windowed(x, (x.min() + x.max()) / 2, x.max() - x.min(), "linear-exact"))
    x = modality(ds, frames[2])
    assert np.array_equal(third, windowed(x, (x.min() + x.max()) / 2, x.max() - x.min(), "linear-exact"))
    assert picture(small.content).shape == (32, 32) and small.headers["Content-Type"] == "image/jpeg"


def enhanced_ct(windows):
    """An Enhanced CT image (PS3.3 A.38.1), a frame per entry of ``windows`` (that frame's own
    (center, width) in its Per-frame Functional Groups, or None), the rescale and a window for
    the others in the Shared Functional Groups (PS3.3 C.7.6.16.2.9, C.7.6.16.2.10)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    def item(**values):
        element = Dataset()
        for keyword, value in values.items():
            setattr(element, keyword, value)
        return element

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    ds.Modality, ds.PatientID = "CT", "PX-ENH"
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.SamplesPerPixel = 16, 16, len(windows), 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ramp = np.arange(256, dtype=np.uint16).reshape(16, 16) * 8  # 0 .. 2040
    ds.PixelData = np.stack([ramp + 5 * n for n in range(len(windows))]).tobytes()
    ds.SharedFunctionalGroupsSequence = Sequence([item(
        PixelValueTransformationSequence=Sequence([item(RescaleSlope=1, RescaleIntercept=-1024, RescaleType="HU")]),
        FrameVOILUTSequence=Sequence([item(WindowCenter=40, WindowWidth=400)]),
    )])  # fmt: skip
    ds.PerFrameFunctionalGroupsSequence = Sequence(
        [
            item(FrameVOILUTSequence=Sequence([item(WindowCenter=w[0], WindowWidth=w[1])])) if w else item()
            for w in windows
        ]
    )
    return ds


def test_each_frame_of_an_enhanced_multi_frame_image_is_drawn_with_its_own_window(dicomweb, http):
    ds = enhanced_ct([None, (500, 1000), (-600, 1500)])
    instance = store(ds)
    frames = ds.pixel_array.astype(np.float64) - 1024  # the shared rescale (PS3.3 C.7.6.16.2.9)

    for number, (center, width) in enumerate([(40, 400), (500, 1000), (-600, 1500)], start=1):
        png = dicomweb.retrieve_instance_frames_rendered(
            *uids(instance), [number], media_types=("image/png",)
        )
        assert np.array_equal(picture(png), windowed(frames[number - 1], center, width)), number
    # The request's window still wins over the frame's (PS3.18 8.3.5.1.4).
    study, series, sop = uids(instance)
    asked = http(
        f"studies/{study}/series/{series}/instances/{sop}/frames/2/rendered?window=40,400", Accept="image/png"
    )
    assert np.array_equal(picture(asked.content), windowed(frames[1], 40, 400))
