"""Share links and consults (sharing/), logged out through Django's test client against the
real database, cache (Redis) and storage: the token kept only as its hash, refusals after revoke
and expiry, the access code and its rate limit, the DICOMweb grant confined to the link's
studies, the openings in the audit log, the opinion filed as a consult report, the owner's
JPEGs, the DICOM ZIP and the REST API."""

import hashlib
import io
import zipfile
from datetime import UTC, datetime, timedelta

import pydicom
import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils.timezone import now
from PIL import Image
from pydicom.uid import generate_uid

from imaging.models import Study
from integrations.api.clients import api_client_create
from integrations.models import ApiClient, WebhookDelivery, WebhookSubscription
from sharing import services
from sharing.models import ConsultReport, ConsultRequest, ShareLink
from tests.test_browser_viewer import ct_slice
from tests.test_dicomweb_wado import ingest, uids  # noqa: F401  (fixture)
from vetclinic.audit.models import AuditEntry
from vetclinic.audit.services import Actor

pytestmark = pytest.mark.django_db(transaction=True)
ACTOR = Actor.system("tests")


@pytest.fixture(autouse=True)
def cache_cleared():
    cache.clear()  # the rate limits' counters: each test starts with none
    yield
    cache.clear()


@pytest.fixture
def studies(reference_data, ingest, make_patient):  # noqa: F811
    """The shared study (two CT slices), a prior of the same dog, and a stranger's study."""
    dog = make_patient("Biscuit")
    made = []
    for _ in range(3):
        study, series = generate_uid(), generate_uid()
        ingest(ct_slice(study, series, 0), ct_slice(study, series, 1))
        made.append(Study.objects.get(study_instance_uid=study))
    shared, prior, other = made
    Study.objects.filter(pk__in=[shared.pk, prior.pk]).update(patient=dog)
    shared.refresh_from_db()
    prior.refresh_from_db()
    return shared, prior, other


def _path(raw, name="share_open", **kw):
    return reverse(name, args=[raw, *kw.values()])


def test_the_token_is_stored_only_as_its_hash(studies):
    shared, prior, _ = studies
    link, raw = services.link_create(actor=ACTOR, study=shared, kind="specialist", access_code="4711")
    assert len(raw) >= 43  # 32 random bytes, URL-safe base64
    row = ShareLink.objects.filter(pk=link.pk).values().get()
    assert row["token_hash"] == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in repr(row) and "4711" not in repr(row)
    assert not AuditEntry.objects.filter(changes__icontains=raw).exists()
    assert services.link_find(raw).pk == link.pk
    assert services.link_find(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None
    # No patient data in the address: the token alone.
    assert _path(raw) == f"/s/{raw}"


def test_a_link_is_refused_after_revoke_and_after_expiry(studies, staff):
    shared, _, _ = studies
    link, raw = services.link_create(actor=ACTOR, study=shared, kind="specialist")
    visitor = Client()
    assert visitor.get(_path(raw)).status_code == 200
    metadata = f"/dicomweb/studies/{shared.study_instance_uid}/metadata"
    assert visitor.get(metadata).status_code == 200

    staffer = Client()
    staffer.force_login(staff["veterinarian"])
    assert staffer.post(reverse("share_link_revoke", args=[link.pk])).status_code == 302
    refused = visitor.get(_path(raw))
    assert refused.status_code == 410 and b"revoked" in refused.content
    assert visitor.get(metadata).status_code in (401, 403)  # the grant ends with the link, at once

    _, old = services.link_create(
        actor=ACTOR, study=shared, kind="owner", expires_at=datetime(2020, 1, 1, tzinfo=UTC)
    )
    expired = Client().get(_path(old))
    assert expired.status_code == 410 and b"expired" in expired.content
    assert Client().get("/s/not-a-token").status_code == 404


def test_a_wrong_access_code_is_refused_and_then_rate_limited(studies, settings):
    settings.SHARE_CODE_ATTEMPTS = 3
    shared, _, _ = studies
    _, raw = services.link_create(actor=ACTOR, study=shared, kind="owner", access_code="right-code")
    visitor = Client()
    asked = visitor.get(_path(raw))
    assert (
        asked.status_code == 200
        and b'name="access_code"' in asked.content
        and b"share-owner" not in asked.content
    )
    assert visitor.get(reverse("share_image", args=[raw, 1])).status_code == 403  # not before the code
    assert visitor.post(_path(raw), {"access_code": "wrong"}).status_code == 403
    assert visitor.post(_path(raw), {"access_code": "wrong"}).status_code == 403
    locked = visitor.post(_path(raw), {"access_code": "wrong"})
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    assert visitor.post(_path(raw), {"access_code": "right-code"}).status_code == 429  # locked out
    # Another address is not locked out by this one; the right code opens the page.
    other = Client(REMOTE_ADDR="10.9.8.7")
    assert other.post(_path(raw), {"access_code": "right-code"}).status_code == 302
    page = other.get(_path(raw))
    assert page.status_code == 200 and b'id="share-owner"' in page.content


def test_page_views_are_rate_limited_per_link_and_address(studies, settings):
    settings.SHARE_RATE_LIMIT = 3
    shared, _, _ = studies
    _, raw = services.link_create(actor=ACTOR, study=shared, kind="owner")
    visitor = Client()
    assert [visitor.get(_path(raw)).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert Client(REMOTE_ADDR="10.1.2.3").get(_path(raw)).status_code == 200


def test_the_link_session_reads_only_its_own_studies_over_dicomweb(studies):
    shared, prior, other = studies
    _, raw = services.link_create(actor=ACTOR, study=shared, kind="specialist", priors=[prior])
    visitor = Client()
    root = "/dicomweb/studies/"
    assert visitor.get(f"{root}{shared.study_instance_uid}/metadata").status_code in (
        401,
        403,
    )  # no grant yet
    assert visitor.get(_path(raw)).status_code == 200
    assert visitor.get(f"{root}{shared.study_instance_uid}/metadata").status_code == 200
    assert visitor.get(f"{root}{prior.study_instance_uid}/metadata").status_code == 200  # a chosen prior
    own_series = shared.series.get().series_instance_uid
    thumbnail = visitor.get(f"{root}{shared.study_instance_uid}/series/{own_series}/thumbnail")
    assert thumbnail.status_code == 200 and Image.open(io.BytesIO(thumbnail.content)).getextrema() != (0, 0)
    assert visitor.get(f"{root}{other.study_instance_uid}/metadata").status_code == 403
    assert (
        visitor.get(f"{root}{other.study_instance_uid}/rendered", HTTP_ACCEPT="image/jpeg").status_code == 403
    )
    # Another study's series and instance under the granted study's UID: nothing.
    series = other.series.get()
    instance = series.instances.first()
    sneaky = f"{root}{shared.study_instance_uid}/series/{series.series_instance_uid}/instances/{instance.sop_instance_uid}"
    assert visitor.get(f"{sneaky}/metadata").status_code == 404
    assert visitor.get(f"{sneaky}/frames/1").status_code == 404
    # Searches could name any study; writes are never allowed.
    assert visitor.get("/dicomweb/studies").status_code == 403
    assert visitor.get(f"{root}{shared.study_instance_uid}/series").status_code == 403
    assert visitor.post("/dicomweb/studies", b"", content_type="application/dicom").status_code == 403
    # Nor the REST API, nor the staff pages.
    assert visitor.get(f"/api/v1/studies/{shared.pk}").status_code in (401, 403)
    assert visitor.get(reverse("study_detail", args=[shared.pk])).status_code == 302
    # A tampered grant is no grant.
    session = visitor.session
    session["share_grant"] = session["share_grant"][:-2] + "xx"
    session.save()
    assert visitor.get(f"{root}{shared.study_instance_uid}/metadata").status_code in (401, 403)


def test_openings_are_audited_counted_and_told(studies):
    shared, _, _ = studies
    client, _ = api_client_create(actor=ACTOR, name="PMS", scopes=["studies:read"])
    WebhookSubscription.objects.create(client=client, url="https://pms.invalid/hook", secret="s" * 32,
                                       events=["share.opened", "consult.reported"])  # fmt: skip
    link, raw = services.link_create(
        actor=ACTOR, study=shared, kind="owner", note="Biscuit's fracture is healing."
    )
    page = Client(REMOTE_ADDR="192.0.2.44").get(_path(raw))
    assert b"fracture is healing" in page.content and page["Referrer-Policy"] == "same-origin"
    Client(REMOTE_ADDR="192.0.2.45").get(_path(raw))
    openings = AuditEntry.objects.filter(action=services.OPENED, object_id=str(shared.pk)).order_by("at")
    assert [entry.changes["address"][1] for entry in openings] == ["192.0.2.44", "192.0.2.45"]
    assert all(entry.actor == f"share link #{link.pk}" and entry.at is not None for entry in openings)
    link.refresh_from_db()
    assert link.opened_count == 2
    told = WebhookDelivery.objects.filter(event="share.opened")
    assert told.count() == 2 and told.first().payload["data"]["link"]["id"] == link.pk
    assert ApiClient.objects.count() == 1


def test_the_opinion_is_filed_as_a_consult_report_and_the_vet_is_told(studies, staff):
    shared, prior, _ = studies
    client, _ = api_client_create(actor=ACTOR, name="PMS", scopes=["studies:read"])
    WebhookSubscription.objects.create(client=client, url="https://pms.invalid/hook", secret="s" * 32,
                                       events=["consult.requested", "consult.reported"])  # fmt: skip
    consult, raw = services.consult_create(
        actor=Actor.for_user(staff["veterinarian"]), study=shared, destination="Dr Reyes, radiologist",
        clinical_question="Pulmonary nodules?", history="Coughing for 3 weeks.", priors=[prior],
    )  # fmt: skip
    assert consult.status == "sent" and consult.link.kind == "specialist"
    visitor = Client()
    page = visitor.get(_path(raw))
    assert b"Pulmonary nodules?" in page.content and b"share-opinion-form" in page.content
    consult.refresh_from_db()
    assert consult.status == "received"
    refused = visitor.post(_path(raw, "share_opinion"), {"author_name": "", "text": ""})
    assert refused.status_code == 400 and not ConsultReport.objects.exists()
    filed = visitor.post(_path(raw, "share_opinion"), {"author_name": "Dr Reyes", "text": "No nodules seen."})
    assert filed.status_code == 200
    report = ConsultReport.objects.get()
    assert (report.study_id, report.consult_id, report.author_name, report.text) == (
        shared.pk,
        consult.pk,
        "Dr Reyes",
        "No nodules seen.",
    )
    consult.refresh_from_db()
    assert consult.status == "reported" and consult.reported_at is not None
    assert [d.event for d in WebhookDelivery.objects.order_by("pk")] == [
        "consult.requested",
        "consult.reported",
    ]
    # The requesting vet: a badge on the study page, until acknowledged.
    vet = Client()
    vet.force_login(staff["veterinarian"])
    study_page = vet.get(reverse("study_detail", args=[shared.pk])).content.decode()
    assert "1 new consult report" in study_page and "No nodules seen." in study_page
    assert 'data-state="active"' in study_page
    vet.post(reverse("consult_reports_seen", args=[shared.pk]))
    assert "new consult report" not in vet.get(reverse("study_detail", args=[shared.pk])).content.decode()


def test_the_owner_gets_jpegs_and_the_specialist_the_dicom_files(studies):
    shared, _, _ = studies
    _, owner = services.link_create(actor=ACTOR, study=shared, kind="owner")
    visitor = Client()
    page = visitor.get(_path(owner)).content.decode()
    assert page.count('class="share-image"') == 1  # no key images: the first image of each series
    picture = visitor.get(reverse("share_image", args=[owner, 1]))
    assert picture["Content-Type"] == "image/jpeg"
    image = Image.open(io.BytesIO(picture.content))
    assert image.size == (128, 128) and image.getextrema() != (0, 0)
    download = visitor.get(reverse("share_image", args=[owner, 1]) + "?download=1")
    assert download["Content-Disposition"].startswith("attachment")
    assert visitor.get(reverse("share_image", args=[owner, 2])).status_code == 404
    assert visitor.get(reverse("share_download", args=[owner])).status_code == 404  # owners get no DICOM

    _, specialist = services.link_create(actor=ACTOR, study=shared, kind="specialist")
    response = visitor.get(reverse("share_download", args=[specialist]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    read = [pydicom.dcmread(io.BytesIO(archive.read(name))) for name in archive.namelist()]
    assert sorted(ds.SOPInstanceUID for ds in read) == sorted(
        shared.series.get().instances.values_list("sop_instance_uid", flat=True)
    )


def test_share_links_and_consults_over_rest(studies):
    shared, prior, other = studies
    _, key = api_client_create(actor=ACTOR, name="PMS", scopes=["studies:read", "studies:write"])
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    url = f"/api/v1/studies/{shared.pk}/share-links"
    made = api.post(url, {"kind": "owner", "note": "All well."}, content_type="application/json")
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["state"] == "active" and body["url"].startswith("http://testserver/s/")
    assert (
        ShareLink.objects.get(pk=body["id"]).token_hash
        == hashlib.sha256(body["url"].rsplit("/", 1)[1].encode()).hexdigest()
    )
    bad = api.post(url, {"kind": "friend"}, content_type="application/json")
    assert bad.status_code == 400 and "kind" in bad.json()["error"]["fields"]
    foreign = api.post(url, {"kind": "specialist", "priors": [other.pk]}, content_type="application/json")
    assert foreign.status_code == 400 and "priors" in foreign.json()["error"]["fields"]
    assert [link["id"] for link in api.get(url).json()] == [body["id"]]

    consults = f"/api/v1/studies/{shared.pk}/consults"
    asked = api.post(consults, {"destination": "TeleRad Ltd", "clinical_question": "Effusion?",
                                "weight_kg": "31.4", "priors": [prior.pk]}, content_type="application/json")  # fmt: skip
    assert asked.status_code == 201, asked.content
    consult = asked.json()
    assert (
        consult["status"] == "sent" and consult["priors"] == [prior.pk] and consult["weight_kg"] == "31.400"
    )
    missing = api.post(consults, {"destination": "TeleRad Ltd"}, content_type="application/json")
    assert missing.status_code == 400 and "clinical_question" in missing.json()["error"]["fields"]
    got = api.get(f"/api/v1/consults/{consult['id']}").json()
    assert got["destination"] == "TeleRad Ltd" and got["reports"] == []
    assert api.get("/api/v1/consults/999999").status_code == 404
    reader = Client(
        HTTP_AUTHORIZATION=f"Bearer {api_client_create(actor=ACTOR, name='RO', scopes=['studies:read'])[1]}"
    )
    assert reader.post(url, {"kind": "owner"}, content_type="application/json").status_code == 403
    assert ConsultRequest.objects.count() == 1


def test_expiry_defaults_to_seven_days(studies, settings):
    shared, _, _ = studies
    before = now()
    link, _ = services.link_create(actor=ACTOR, study=shared, kind="owner")
    assert timedelta(days=7) <= link.expires_at - before < timedelta(days=7, minutes=5)


def test_the_owner_sees_the_key_images_when_there_are_some(studies):
    from imaging.annotations.services import key_image_set

    shared, _, _ = studies
    second = shared.series.get().instances.order_by("-instance_number").first()
    key = {"seriesUid": second.series.series_instance_uid, "sopInstanceUid": second.sop_instance_uid,
           "frame": 1, "imageId": f"wadors:/x/instances/{second.sop_instance_uid}/frames/1"}  # fmt: skip
    key_image_set(actor=ACTOR, study=shared, version=0, key_image=key, flagged=True)
    _, raw = services.link_create(actor=ACTOR, study=shared, kind="owner")
    visitor = Client()
    assert visitor.get(_path(raw)).content.decode().count('class="share-image"') == 1
    flagged = Image.open(io.BytesIO(visitor.get(reverse("share_image", args=[raw, 1])).content))
    # Slice 1's bright square lies lower than slice 0's (ct_slice): the key image is drawn, not the first.
    rows = [sum(flagged.convert("L").crop((0, y, 128, y + 1)).getdata()) for y in range(128)]
    assert max(range(128), key=rows.__getitem__) >= 30
    consult, _ = services.consult_create(
        actor=ACTOR, study=shared, destination="TeleRad", clinical_question="?"
    )
    assert consult.key_images == [
        {"seriesUid": key["seriesUid"], "sopInstanceUid": key["sopInstanceUid"], "frame": 1}
    ]
