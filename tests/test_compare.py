"""Comparing (issue 16): the animal's other studies by its linked record and the records merged
into it, never by the DICOM Patient ID alone; hanging protocols chosen by specificity and
applied by view; their admin pages; the viewer's JSON. The images are real DICOM, received and
indexed as a C-STORE would be (tests/test_dicomweb_wado.py ingest)."""

import numpy
import pydicom
import pytest
from django.urls import reverse
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from imaging.models import HangingProtocol, HangingViewport, Report, Study
from imaging.studies.hanging import hanging_apply, hanging_protocol_for, study_hanging
from imaging.studies.hanging_seeds import hanging_protocols_load
from imaging.studies.priors import study_priors
from imaging.studies.series_views import series_views
from patients.services import patient_merge
from tests.test_dicomweb_wado import ingest, uids  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def radiograph(study, series, *, view="", description="", body_part="CHEST", modality="DX", number=1,
               study_date="20261201", patient_id="P000001", shape="left"):  # fmt: skip
    """A small radiograph: CT_small's header made a DX of the view given, pixels of our own (a
    bright bar whose place tells the views apart on a canvas)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    pixels = numpy.full((ds.Rows, ds.Columns), 100, dtype=numpy.int16)
    bars = {"left": numpy.s_[:, 10:40], "right": numpy.s_[:, 88:118], "middle": numpy.s_[50:78, :]}
    pixels[bars[shape]] = 900
    ds.PixelData = pixels.tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.WindowCenter, ds.WindowWidth = 500, 1000
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = DX_STORAGE
    if view:
        ds.ViewPosition = view
    return ds, uids(
        study, series, InstanceNumber=number, SeriesNumber=number, Modality=modality, SeriesDescription=description,
        BodyPartExamined=body_part, StudyDate=study_date, PatientID=patient_id, PatientName="Hartley^Biscuit",
        AccessionNumber="",
    )  # fmt: skip


@pytest.fixture
def seeded(reference_data):
    """The migration's seeded protocols, which a transactional test's flush took away."""
    hanging_protocols_load(HangingProtocol, HangingViewport)


def study_of(uid):
    return Study.objects.get(study_instance_uid=uid)


def link(uid, patient):
    Study.objects.filter(study_instance_uid=uid).update(patient=patient, link=Study.Link.MANUAL)
    return study_of(uid)


def thorax(ingest, *, study_date="20261201", patient_id="P000001", views=("RL", "LL", "VD")):  # noqa: F811
    """A thorax three-view study sent in a muddled order: VD first, then the laterals."""
    study = generate_uid()
    described = {"RL": "Thorax R lat", "LL": "Thorax L lat", "VD": "Thorax VD"}
    shapes = {"RL": "left", "LL": "right", "VD": "middle"}
    series = {view: generate_uid() for view in views}
    ingest(*(
        radiograph(study, series[view], view=view, description=described[view], number=n, study_date=study_date,
                   patient_id=patient_id, shape=shapes[view])
        for n, view in enumerate(reversed(views), start=1)
    ))  # fmt: skip
    return study, series


def test_priors_follow_the_record_and_its_merged_aliases_not_the_dicom_patient_id(
    reference_data,
    ingest,
    make_patient,
    django_assert_max_num_queries,
    actor,  # noqa: F811
):
    biscuit = make_patient("Biscuit", patient_id="P000001")
    duplicate = make_patient("Biscuit", patient_id="P000077")  # registered twice by mistake
    stranger = make_patient("Pepper", patient_id="P000002")
    today, _ = thorax(ingest, study_date="20261201")
    earlier, _ = thorax(ingest, study_date="20250302", patient_id="P000077")
    much_earlier, _ = thorax(ingest, study_date="20240110", patient_id="P000077")
    # Another animal whose images carry Biscuit's Patient ID (another clinic's numbering), and a
    # study with that Patient ID that no one has linked: neither is Biscuit's.
    others, _ = thorax(ingest, study_date="20250601", patient_id="P000001")
    unlinked, _ = thorax(ingest, study_date="20250701", patient_id="P000001")
    link(today, biscuit)
    link(earlier, duplicate)
    link(much_earlier, duplicate)
    link(others, stranger)
    Study.objects.filter(study_instance_uid=unlinked).update(patient=None, link=Study.Link.UNMATCHED)
    Report.objects.create(study=study_of(much_earlier), status=Report.Status.FINAL, findings="Clear lungs.")

    assert study_priors(study_of(today)) == []  # the duplicate is still another record
    patient_merge(actor=actor, source=duplicate, target=biscuit)

    priors = study_priors(study_of(today))
    assert [p.study.study_instance_uid for p in priors] == [earlier, much_earlier]
    first = priors[0].as_json()
    assert (first["date"], first["earlier"], first["modalities"], first["body_parts"]) == (
        "2025-03-02", True, ["DX"], ["CHEST"],
    )  # fmt: skip
    assert (first["series_count"], first["image_count"], first["report_status"]) == (3, 3, "unread")
    assert priors[1].as_json()["report_status"] == "final"

    # A fixed number of queries however many studies the animal has.
    with django_assert_max_num_queries(8):
        study_priors(study_of(today))

    # A study still linked to the alias record (as it was before the merge, or from an import):
    # it is the same animal, both ways.
    link(much_earlier, duplicate)
    assert [p.study.study_instance_uid for p in study_priors(study_of(much_earlier))] == [today, earlier]
    assert [p.study.study_instance_uid for p in study_priors(study_of(today))] == [earlier, much_earlier]
    # Later studies are listed too, marked as not earlier.
    assert [p.earlier for p in study_priors(study_of(earlier))] == [False, True]
    # An unlinked study has no priors: a Patient ID alone names no animal.
    assert study_priors(study_of(unlinked)) == []


def test_each_series_is_matched_with_the_priors_same_view(reference_data, ingest, make_patient):  # noqa: F811
    biscuit = make_patient("Biscuit", patient_id="P000001")
    today, now_series = thorax(ingest, study_date="20261201")
    # The prior's series say their view in words only, and in another order.
    prior = generate_uid()
    before = {"VD": generate_uid(), "LL": generate_uid(), "RL": generate_uid()}
    ingest(
        radiograph(prior, before["LL"], description="Thorax left lateral", number=1, study_date="20250302"),
        radiograph(prior, before["VD"], description="Thorax ventro-dorsal", number=2, study_date="20250302"),
        radiograph(prior, before["RL"], description="Thorax right lateral", number=3, study_date="20250302"),
    )
    link(today, biscuit)
    link(prior, biscuit)
    (found,) = study_priors(study_of(today))
    assert found.matches == {now_series[view]: before[view] for view in ("RL", "LL", "VD")}
    views = {s["uid"]: s["view"] for s in found.as_json()["series"]}
    assert views == {
        before["RL"]: "right lateral",
        before["LL"]: "left lateral",
        before["VD"]: "ventrodorsal",
    }


def test_the_most_specific_protocol_is_chosen(seeded, ingest, make_patient, dog, cat):  # noqa: F811
    biscuit = make_patient("Biscuit", patient_id="P000001")
    study_uid, series = thorax(ingest)
    study = link(study_uid, biscuit)
    assert hanging_protocol_for(study).name == "Thorax three views (DX)"  # body part + modality

    any_dx = HangingProtocol.objects.create(name="Any DX", modality="DX", layout="1x1")
    HangingViewport.objects.create(protocol=any_dx, position=1, keywords="lateral")
    assert hanging_protocol_for(study).name == "Thorax three views (DX)"  # more specific than modality alone
    dogs_dx = HangingProtocol.objects.create(name="Dogs' DX", modality="DX", species=dog, layout="1x1")
    HangingViewport.objects.create(protocol=dogs_dx, position=1, keywords="lateral")
    assert hanging_protocol_for(study).name == "Thorax three views (DX)"  # body part counts more
    dogs_thorax = HangingProtocol.objects.create(
        name="Dog thorax", modality="DX", species=dog, body_part="THORAX, CHEST", layout="1x2"
    )
    HangingViewport.objects.create(protocol=dogs_thorax, position=1, view_positions="VD")
    assert hanging_protocol_for(study).name == "Dog thorax"  # species + body part + modality
    HangingProtocol.objects.filter(species=dog).update(species=cat)  # not for this animal now
    assert hanging_protocol_for(study).name == "Thorax three views (DX)"
    HangingProtocol.objects.filter(name__startswith="Thorax").update(active=False)
    assert hanging_protocol_for(study).name == "Any DX"
    HangingProtocol.objects.filter(modality="DX").update(active=False)
    assert hanging_protocol_for(study) is None


def test_the_thorax_three_view_hangs_each_view_in_its_place(seeded, ingest, make_patient):  # noqa: F811
    biscuit = make_patient("Biscuit", patient_id="P000001")
    study_uid, series = thorax(ingest)  # sent VD, LL, RL
    study = link(study_uid, biscuit)
    protocol = HangingProtocol.objects.get(name="Thorax three views (DX)")
    hung = [h.as_json() for h in hanging_apply(protocol, series_views(study_ids=[study.pk]))]
    assert hung == [
        {"position": 1, "label": "Right lateral", "series_uid": series["RL"], "matched": True},
        {"position": 2, "label": "Left lateral", "series_uid": series["LL"], "matched": True},
        {"position": 3, "label": "VD", "series_uid": series["VD"], "matched": True},
    ]
    assert study_hanging(study)["layout"] == "2x2"

    # Two views only, named in words: the VD viewport is filled by what is left, unmatched.
    two_uid = generate_uid()
    right, other = generate_uid(), generate_uid()
    ingest(
        radiograph(two_uid, other, description="Thorax extra", number=1),
        radiograph(two_uid, right, description="Thorax right lateral", number=2),
    )
    two = link(two_uid, biscuit)
    hung = [h.as_json() for h in hanging_apply(protocol, series_views(study_ids=[two.pk]))]
    assert [(h["series_uid"], h["matched"]) for h in hung] == [(right, True), (other, False), (None, False)]


def test_the_viewers_json_is_for_staff_who_may_see_studies(seeded, ingest, make_patient, staff, client):  # noqa: F811
    biscuit = make_patient("Biscuit", patient_id="P000001")
    today, series = thorax(ingest)
    prior, _ = thorax(ingest, study_date="20250302")
    study, earlier = link(today, biscuit), link(prior, biscuit)
    priors_url = reverse("study_priors_json", args=[study.pk])
    hanging_url = reverse("study_hanging_json", args=[study.pk])

    assert client.get(priors_url).json() == {
        "error": {"field": "session", "message": "Sign in to see studies."}
    }
    assert client.get(priors_url).status_code == 401
    client.force_login(staff["radiologist"])
    answer = client.get(priors_url).json()
    assert [(p["pk"], p["date"], p["viewer_url"]) for p in answer["priors"]] == [
        (earlier.pk, "2025-03-02", reverse("study_viewer", args=[earlier.pk]))
    ]
    assert answer["priors"][0]["study_uid"] == prior
    hanging = client.get(hanging_url).json()
    assert hanging["protocol"]["name"] == "Thorax three views (DX)"
    assert [v["series_uid"] for v in hanging["viewports"]] == [series["RL"], series["LL"], series["VD"]]
    missing = client.get(reverse("study_priors_json", args=[999_999]))
    assert (missing.status_code, missing.json()["error"]["field"]) == (404, "study")
    assert client.post(priors_url).status_code == 405

    # A user without the permission to see studies is refused.
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_user("nobody", password="x-nobody-password-1"))
    refused = client.get(hanging_url)
    assert (refused.status_code, refused.json()["error"]["field"]) == (403, "permission")


def test_the_admin_edits_protocols_and_saves_one_unchanged(seeded, staff, client):
    client.force_login(staff["admin"])
    listed = client.get(reverse("admin:imaging_hangingprotocol_changelist"))
    assert listed.status_code == 200 and "Thorax three views (DX)" in listed.content.decode()
    added = client.get(reverse("admin:imaging_hangingprotocol_add"))
    assert added.status_code == 200 and "View Position (0018,5101)" in added.content.decode()
    protocol = HangingProtocol.objects.get(name="Thorax three views (DX)")
    url = reverse("admin:imaging_hangingprotocol_change", args=[protocol.pk])
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    formset = page.context["inline_admin_formsets"][0].formset
    data = {name: value for name, value in form.initial.items() if value is not None}
    data["species"] = ""
    data["active"] = "on"
    data.pop("created", None), data.pop("updated", None)
    prefix = formset.prefix
    data.update({
        f"{prefix}-TOTAL_FORMS": str(len(formset.forms)), f"{prefix}-INITIAL_FORMS": str(len(formset.forms)),
        f"{prefix}-MIN_NUM_FORMS": "1", f"{prefix}-MAX_NUM_FORMS": "1000",
    })  # fmt: skip
    before = list(protocol.viewports.values("position", "label", "view_positions", "keywords"))
    for index, subform in enumerate(formset.forms):
        data[f"{prefix}-{index}-id"], data[f"{prefix}-{index}-protocol"] = subform.instance.pk, protocol.pk
        for name in ("position", "label", "view_positions", "keywords"):
            data[f"{prefix}-{index}-{name}"] = subform.initial[name]
    saved = client.post(url, data)
    assert saved.status_code == 302, saved.context and saved.context["errors"]
    assert list(protocol.viewports.values("position", "label", "view_positions", "keywords")) == before
    protocol.refresh_from_db()
    assert (protocol.modality, protocol.body_part, protocol.layout) == ("DX", "CHEST, THORAX", "2x2")

    # A viewport the layout does not have is refused, naming the field.
    data["layout"] = "1x2"
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert "The layout 1x2 has 2 viewport(s)." in refused.content.decode()
    # A viewport found by nothing is refused too.
    data["layout"] = "2x2"
    data[f"{prefix}-0-view_positions"] = data[f"{prefix}-0-keywords"] = ""
    assert "Give a view position or a keyword" in client.post(url, data).content.decode()
    # Someone who is not an admin may not edit them.
    client.force_login(staff["veterinarian"])
    assert client.get(url).status_code in (302, 403)


def test_a_body_part_the_images_leave_empty_is_read_from_the_description(seeded, ingest, make_patient):  # noqa: F811
    biscuit = make_patient("Biscuit", patient_id="P000001")
    study_uid, lateral, undated = generate_uid(), generate_uid(), generate_uid()
    ingest(radiograph(study_uid, lateral, view="LL", description="Thorax left lateral", body_part=""))
    study = link(study_uid, biscuit)
    assert hanging_protocol_for(study).name == "Thorax three views (DX)"
    # The abdomen's protocol fits neither by body part nor by words: not chosen.
    Study.objects.filter(pk=study.pk).update(description="")
    HangingProtocol.objects.filter(name__startswith="Thorax").update(active=False)
    assert hanging_protocol_for(Study.objects.get(pk=study.pk)) is None

    # A prior without a date is listed after the dated ones.
    ingest(radiograph(undated, generate_uid(), description="Thorax VD", study_date=""))
    link(undated, biscuit)
    older, _ = thorax(ingest, study_date="20240110")
    link(older, biscuit)
    today, _ = thorax(ingest, study_date="20261201")
    assert [p.study.study_instance_uid for p in study_priors(link(today, biscuit))] == [
        study_uid,
        older,
        undated,
    ]
