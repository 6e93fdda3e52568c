"""The reconciliation queue, the study page, thumbnails and the patient page's studies."""

from datetime import date

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from imaging.ingest import storage
from imaging.ingest.thumbnails import series_thumbnail_render
from imaging.models import Study
from imaging.reconcile import services as reconcile
from tests.studies import DOG, make_study
from vetclinic.audit.models import AuditEntry

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("storage_root")]


@pytest.fixture
def biscuit(make_owner, make_patient):
    return make_patient("Biscuit", owner=make_owner("Hartley", given_name="Jane"))


@pytest.fixture
def viewer(db):
    """Someone who may look at studies but not reconcile them."""
    user = User.objects.create_user("viewer")
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label__in=["imaging", "patients"],
            codename__in=["view_study", "view_series", "view_patient"],
        )
    )
    return user


def logged_in(client, user):
    client.force_login(user)
    return client


def page(client, url):
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def flash(response):
    return [str(m) for m in response.wsgi_request._messages]


def test_the_queue_shows_what_the_images_said_and_the_likely_animals(client, staff, biscuit):
    study = make_study(
        name="Hartley^Biscuit", patient_id="CR-77", description="Left elbow", series=2, images=2
    )
    make_study(name="Okafor^Rex", patient=biscuit, link=Study.Link.PATIENT_ID, description="Already linked")

    body = page(logged_in(client, staff["front desk"]), reverse("reconciliation"))

    assert "Reconciliation (1)" in body  # the nav link counts what waits
    assert "1 study waiting" in body
    assert "Left elbow" in body and "Already linked" not in body
    for said in ("Hartley^Biscuit", "CR-77", DOG, "2025-03-04", "A1001", "4 images", "CT"):
        assert said in body, said
    assert reverse("study_detail", args=[study.pk]) in body
    assert f'name="patient_id" value="{biscuit.patient_id}"' in body  # the suggestion's Link button
    assert "Animal&#x27;s name, owner Hartley, dog" in body


def test_an_empty_queue_says_so(client, staff):
    assert "Nothing to reconcile" in page(logged_in(client, staff["radiologist"]), reverse("reconciliation"))


def test_link_from_the_queue_links_audits_and_goes_back_to_the_queue(
    client, staff, biscuit, queued, django_capture_on_commit_callbacks
):
    study = make_study()
    client = logged_in(client, staff["front desk"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("study_link", args=[study.pk]),
            {"patient_id": biscuit.patient_id, "current": "none", "back": "queue"},
        )
    assert response.status_code == 302 and response["Location"] == reverse("reconciliation")
    study.refresh_from_db()
    assert (study.patient, study.link) == (biscuit, Study.Link.MANUAL)
    assert AuditEntry.objects.get(action="link", object_id=str(study.pk)).user == staff["front desk"]
    assert queued == [study.pk]
    body = client.get(reverse("reconciliation")).content.decode()
    assert "Nothing to reconcile" in body and "linked to Biscuit" in body and "Reconciliation (0)" in body


@pytest.mark.parametrize("post, message", [
    ({"patient_id": "NOPE"}, "No patient has the ID NOPE. Nothing was changed."),
    ({"patient_id": ""}, "This field is required."),
    ({"patient_id": "cat"}, f"The images say the animal is '{DOG}', but Pepper"),
])  # fmt: skip
def test_bad_input_gives_a_clear_message_and_changes_nothing(
    client, staff, make_patient, cat, queued, post, message
):
    pepper = make_patient("Pepper", species=cat)
    study = make_study()
    if post["patient_id"] == "cat":
        post = {"patient_id": pepper.patient_id}
    response = logged_in(client, staff["veterinarian"]).post(
        reverse("study_link", args=[study.pk]), {**post, "back": "queue"}
    )
    assert response.status_code == 302
    assert any(message in text for text in flash(response)), flash(response)
    study.refresh_from_db()
    assert (study.patient, study.link) == (None, Study.Link.UNMATCHED)
    assert not AuditEntry.objects.filter(object_type__model="study").exists()


def test_staff_can_confirm_that_the_images_name_the_wrong_species(client, staff, make_patient, cat, queued):
    pepper = make_patient("Pepper", species=cat)
    study = make_study(species=DOG)
    body = page(logged_in(client, staff["front desk"]), reverse("study_detail", args=[study.pk]))
    assert 'name="species_override"' in body
    client.post(
        reverse("study_link", args=[study.pk]), {"patient_id": pepper.patient_id, "species_override": "on"}
    )
    assert Study.objects.get(pk=study.pk).patient == pepper


def test_a_stale_queue_page_does_not_move_a_study_someone_else_linked(
    client, staff, biscuit, make_patient, actor, queued
):
    rex = make_patient("Rex")
    study = make_study()
    reconcile.study_link_manual(actor=actor, study=study, patient=rex)  # a colleague, meanwhile
    response = logged_in(client, staff["front desk"]).post(
        reverse("study_link", args=[study.pk]),
        {"patient_id": biscuit.patient_id, "current": "none", "back": "queue"},
    )
    assert "changed by someone else" in flash(response)[0]
    assert Study.objects.get(pk=study.pk).patient == rex


def test_the_study_page_shows_the_patient_series_images_and_versions(client, staff, biscuit, actor, queued):
    study = make_study(patient=biscuit, link=Study.Link.PATIENT_ID, series=2, images=3, description="Abdomen")
    first = study.series.get(series_number=1)
    series_thumbnail_render(series_id=first.pk)
    reconcile.study_headers_rewrite(study_id=study.pk)

    body = page(logged_in(client, staff["radiologist"]), reverse("study_detail", args=[study.pk]))

    assert "Abdomen" in body and reverse("patient_detail", args=[biscuit.pk]) in body
    assert "Linked by patient ID" in body and study.study_instance_uid in body
    assert reverse("series_thumbnail", args=[first.pk]) in body  # the rendered one
    assert ">3</td>" in body  # images per series
    assert "Earlier versions" in body and "Patient attributes rewritten on linking" in body
    assert "Move to another patient" in body and "Split this series off" in body


def test_a_single_series_study_offers_no_split(client, staff, biscuit):
    study = make_study(patient=biscuit, link=Study.Link.MANUAL)
    body = page(logged_in(client, staff["front desk"]), reverse("study_detail", args=[study.pk]))
    assert (
        "Move to another patient" in body
        and "Split this series off" not in body
        and "Earlier versions" not in body
    )


def test_moving_a_study_from_its_page(client, staff, biscuit, make_patient, queued):
    rex = make_patient("Rex")
    study = make_study(patient=biscuit, link=Study.Link.PATIENT_ID)
    response = logged_in(client, staff["veterinarian"]).post(
        reverse("study_link", args=[study.pk]),
        {"patient_id": rex.patient_id.lower(), "current": str(biscuit.pk)},
    )
    assert response["Location"] == reverse("study_detail", args=[study.pk])
    assert Study.objects.get(pk=study.pk).patient == rex
    assert AuditEntry.objects.get(action="move").changes["patient"] == [str(biscuit), str(rex)]


def test_splitting_a_series_from_the_study_page_opens_the_new_study(
    client, staff, biscuit, make_patient, queued
):
    rex = make_patient("Rex")
    study = make_study(patient=biscuit, link=Study.Link.PATIENT_ID, series=2)
    series = study.series.get(series_number=2)
    response = logged_in(client, staff["radiologist"]).post(
        reverse("series_split", args=[series.pk]), {"patient_id": rex.patient_id}
    )
    new = Study.objects.get(patient=rex)
    assert response["Location"] == reverse("study_detail", args=[new.pk])
    assert list(new.series.all()) == [series] and new.study_instance_uid != study.study_instance_uid


def test_splitting_the_only_series_is_refused_with_a_message(client, staff, biscuit, make_patient):
    study = make_study(patient=biscuit, link=Study.Link.PATIENT_ID)
    response = logged_in(client, staff["radiologist"]).post(
        reverse("series_split", args=[study.series.get().pk]), {"patient_id": make_patient("Rex").patient_id}
    )
    assert response["Location"] == reverse("study_detail", args=[study.pk])
    assert "move the whole study instead" in flash(response)[0]
    assert Study.objects.count() == 1


def test_the_thumbnail_is_served_from_storage_and_cached(client, staff):
    study = make_study()
    series = study.series.get()
    key = series_thumbnail_render(series_id=series.pk)
    response = logged_in(client, staff["radiologist"]).get(reverse("series_thumbnail", args=[series.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content == storage.object_get(key) and response.content.startswith(b"\x89PNG")
    assert "max-age=31536000" in response["Cache-Control"] and "private" in response["Cache-Control"]


def test_a_series_without_a_thumbnail_is_a_404(client, staff):
    series = make_study().series.get()
    client = logged_in(client, staff["radiologist"])
    assert client.get(reverse("series_thumbnail", args=[series.pk])).status_code == 404
    series.thumbnail_key = "thumbnails/gone.png"  # recorded, but not in storage
    series.save()
    assert client.get(reverse("series_thumbnail", args=[series.pk])).status_code == 404
    assert client.get(reverse("series_thumbnail", args=[99999])).status_code == 404


def test_the_patient_page_lists_the_studies_newest_first(client, staff, biscuit):
    older = make_study(
        patient=biscuit, link=Study.Link.MANUAL, description="Old knee", study_date=date(2023, 1, 2)
    )
    newer = make_study(patient=biscuit, link=Study.Link.MANUAL, description="New chest", series=2, images=2)
    series_thumbnail_render(series_id=newer.series.first().pk)
    make_study(description="Someone else's")

    body = page(logged_in(client, staff["front desk"]), reverse("patient_detail", args=[biscuit.pk]))

    assert "Studies" in body and "Someone else" not in body
    assert body.index("New chest") < body.index("Old knee")
    assert "2025-03-04" in body and "2023-01-02" in body
    assert (
        reverse("study_detail", args=[newer.pk]) in body and reverse("study_detail", args=[older.pk]) in body
    )
    assert reverse("series_thumbnail", args=[newer.series.first().pk]) in body
    assert "<td>4</td>" in body  # images in the newer study


def test_a_patient_without_studies_says_so(client, staff, biscuit):
    assert "No images yet." in page(
        logged_in(client, staff["front desk"]), reverse("patient_detail", args=[biscuit.pk])
    )


def test_every_study_page_sends_a_logged_out_visitor_to_the_login_page(client, biscuit):
    study = make_study(series=2)
    series = study.series.first()
    for method, url in [
        ("get", reverse("reconciliation")),
        ("get", reverse("study_detail", args=[study.pk])),
        ("get", reverse("series_thumbnail", args=[series.pk])),
        ("post", reverse("study_link", args=[study.pk])),
        ("post", reverse("series_split", args=[series.pk])),
    ]:
        response = getattr(client, method)(url, {"patient_id": biscuit.patient_id})
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url
    assert Study.objects.get(pk=study.pk).patient is None


@pytest.mark.parametrize("group", ["front desk", "veterinarian", "radiologist", "admin"])
def test_every_staff_role_may_view_and_reconcile(client, staff, group):
    study = make_study()
    client = logged_in(client, staff[group])
    assert "Reconciliation (1)" in page(client, reverse("reconciliation"))
    assert "Link to patient ID" in page(client, reverse("study_detail", args=[study.pk]))


def test_someone_without_change_study_can_look_but_not_link(client, viewer, biscuit):
    study = make_study(series=2)
    client = logged_in(client, viewer)
    body = page(client, reverse("study_detail", args=[study.pk]))
    assert "Link to patient ID" not in body and "Split this series off" not in body
    assert "Reconciliation (" not in body  # no nav link either
    assert client.get(reverse("reconciliation")).status_code == 200
    assert (
        client.post(reverse("study_link", args=[study.pk]), {"patient_id": biscuit.patient_id}).status_code
        == 403
    )
    assert (
        client.post(
            reverse("series_split", args=[study.series.first().pk]), {"patient_id": biscuit.patient_id}
        ).status_code
        == 403
    )
    assert Study.objects.get(pk=study.pk).patient is None and Study.objects.count() == 1


def test_someone_without_view_study_sees_no_studies(client, db, biscuit):
    user = User.objects.create_user("clerk")
    user.user_permissions.set(Permission.objects.filter(codename="view_patient"))
    make_study(patient=biscuit, link=Study.Link.MANUAL)
    client = logged_in(client, user)
    assert "Studies" not in page(client, reverse("patient_detail", args=[biscuit.pk]))
    assert client.get(reverse("reconciliation")).status_code == 403


def test_linking_is_post_only(client, staff, biscuit):
    study = make_study()
    client = logged_in(client, staff["admin"])
    assert (
        client.get(reverse("study_link", args=[study.pk]), {"patient_id": biscuit.patient_id}).status_code
        == 405
    )
    assert Study.objects.get(pk=study.pk).patient is None


def test_admin_edits_modalities_and_reads_the_index(client, staff):
    study = make_study()
    client = logged_in(client, staff["admin"])
    assert client.get(reverse("admin:imaging_modality_add")).status_code == 200
    response = client.post(
        reverse("admin:imaging_modality_add"), {"ae_title": "DR_ROOM1", "modality_type": "DX", "active": "on"}
    )
    assert response.status_code == 302
    assert client.get(reverse("admin:imaging_study_changelist")).status_code == 200
    assert (
        client.get(reverse("admin:imaging_study_change", args=[study.pk])).status_code == 200
    )  # read-only view
    assert client.get(reverse("admin:imaging_study_add")).status_code == 403
    assert client.get(reverse("admin:imaging_instance_changelist")).status_code == 200
