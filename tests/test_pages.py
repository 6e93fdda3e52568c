import pytest
from django.urls import reverse

from patients.models import Patient, Visit
from patients.services import visit_create
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def biscuit(make_owner, make_patient, labrador):
    return make_patient(owner=make_owner(given_name="Jane", phone="01632 960123"), breed=labrador)


def client_for(client, user):
    client.force_login(user)
    return client


def page_urls(patient):
    owner = patient.primary_owner
    visit = visit_create(actor=_system(), patient=patient, reason="Check")
    return [
        reverse("home"),
        reverse("owner_create"),
        reverse("owner_detail", args=[owner.pk]),
        reverse("owner_edit", args=[owner.pk]),
        reverse("owner_patient_create", args=[owner.pk]),
        reverse("patient_create"),
        reverse("patient_detail", args=[patient.pk]),
        reverse("patient_edit", args=[patient.pk]),
        reverse("patient_merge", args=[patient.pk]),
        reverse("owner_search", args=[patient.pk]),
        reverse("visit_create", args=[patient.pk]),
        reverse("visit_edit", args=[visit.pk]),
        reverse("breed_options"),
    ]


def _system():
    from vetclinic.audit.services import Actor

    return Actor.system("tests")


def test_every_page_sends_a_logged_out_visitor_to_the_login_page(client, biscuit):
    for url in page_urls(biscuit):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_logging_in_with_the_right_password_opens_the_patient_search(client, staff):
    response = client.post(reverse("login"), {"username": "frontdesk", "password": "correct-horse-battery"})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_logging_in_with_a_wrong_password_says_so(client, staff):
    response = client.post(reverse("login"), {"username": "frontdesk", "password": "nope"})
    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode().lower()


# What each group may open: 200 allowed, 403 refused.
ACCESS = {
    "front desk": {
        "owner_create": 200,
        "patient_create": 200,
        "patient_edit": 200,
        "visit_create": 200,
        "patient_merge": 403,
    },
    "veterinarian": {
        "owner_create": 200,
        "patient_create": 200,
        "patient_edit": 200,
        "visit_create": 200,
        "patient_merge": 200,
    },
    "radiologist": {
        "owner_create": 403,
        "patient_create": 403,
        "patient_edit": 403,
        "visit_create": 403,
        "patient_merge": 403,
    },
    "admin": {
        "owner_create": 200,
        "patient_create": 200,
        "patient_edit": 200,
        "visit_create": 200,
        "patient_merge": 200,
    },
}


@pytest.mark.parametrize("group", ACCESS)
def test_each_group_can_open_what_its_role_allows(client, staff, biscuit, group):
    client_for(client, staff[group])
    args = {"patient_edit": [biscuit.pk], "visit_create": [biscuit.pk], "patient_merge": [biscuit.pk]}
    for name, status in ACCESS[group].items():
        assert client.get(reverse(name, args=args.get(name))).status_code == status, name
    # Everybody can find and read the record.
    assert client.get(reverse("home"), {"q": "bisc"}).status_code == 200
    assert client.get(reverse("patient_detail", args=[biscuit.pk])).status_code == 200


def test_a_radiologist_cannot_change_a_record_by_posting_either(client, staff, biscuit):
    client_for(client, staff["radiologist"])
    response = client.post(
        reverse("patient_edit", args=[biscuit.pk]), {"name": "Changed", "species": biscuit.species_id}
    )
    assert response.status_code == 403
    assert Patient.objects.get(pk=biscuit.pk).name == "Biscuit"


def test_only_admins_see_the_history_and_the_audit_log(client, staff, biscuit):
    page = (
        client_for(client, staff["admin"]).get(reverse("patient_detail", args=[biscuit.pk])).content.decode()
    )
    assert "History" in page and "Audit log" in page
    page = (
        client_for(client, staff["front desk"])
        .get(reverse("patient_detail", args=[biscuit.pk]))
        .content.decode()
    )
    assert "History" not in page and "Audit log" not in page
    assert client.get(reverse("admin:audit_auditentry_changelist")).status_code == 302
    assert (
        client_for(client, staff["admin"]).get(reverse("admin:audit_auditentry_changelist")).status_code
        == 200
    )


def test_the_search_box_answers_htmx_with_just_the_results(client, staff, biscuit):
    client_for(client, staff["front desk"])
    response = client.get(
        reverse("home"), {"q": "hartley"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="search-results"
    )
    body = response.content.decode()
    assert "<html" not in body
    assert "Biscuit" in body and "Labrador retriever" in body and biscuit.patient_id in body


def test_the_full_search_page_works_without_script(client, staff, biscuit):
    body = (
        client_for(client, staff["front desk"]).get(reverse("home"), {"q": "01632 960123"}).content.decode()
    )
    assert "<html" in body and "Biscuit" in body


def test_breed_options_narrow_to_the_chosen_species(client, staff, dog, cat):
    client_for(client, staff["front desk"])
    dog_options = client.get(reverse("breed_options"), {"species": dog.pk}).content.decode()
    cat_options = client.get(reverse("breed_options"), {"species": cat.pk}).content.decode()
    assert "Labrador retriever" in dog_options and "Maine coon" not in dog_options
    assert "Maine coon" in cat_options and "Labrador retriever" not in cat_options
    assert "Mixed breed" in cat_options.split("</option>")[1]  # mixed breed offered first
    assert client.get(reverse("breed_options"), {"species": "nonsense"}).status_code == 200


def test_the_owner_page_lists_the_animals(client, staff, biscuit, make_patient, cat):
    make_patient("Pepper", owner=biscuit.primary_owner, species=cat)
    body = (
        client_for(client, staff["front desk"])
        .get(reverse("owner_detail", args=[biscuit.primary_owner.pk]))
        .content.decode()
    )
    assert "Biscuit" in body and "Pepper" in body and "01632 960123" in body


def test_an_owner_is_added_from_the_patients_page(client, staff, biscuit, make_owner):
    john = make_owner("Okafor", given_name="John")
    client_for(client, staff["front desk"])
    results = client.get(reverse("owner_search", args=[biscuit.pk]), {"q": "okafor"}).content.decode()
    assert "Okafor, John" in results
    client.post(reverse("ownership_add", args=[biscuit.pk]), {"owner": john.pk, "role": "agent"})
    assert biscuit.ownerships.get(owner=john).role == "agent"
    assert biscuit.primary_owner.given_name == "Jane"


def test_merge_asks_for_confirmation_then_merges(client, staff, biscuit, make_patient):
    duplicate = make_patient("Biscuit")
    visit_create(actor=_system(), patient=duplicate, reason="Seen as a new patient by mistake")
    client_for(client, staff["veterinarian"])
    url = reverse("patient_merge", args=[biscuit.pk])

    review = client.get(url, {"other": duplicate.patient_id.lower()})
    assert review.status_code == 200
    assert f"Merge {duplicate.patient_id} into {biscuit.patient_id}" in review.content.decode()
    assert Patient.objects.get(pk=duplicate.pk).merged_into is None  # nothing happens on review

    response = client.post(url, {"other": duplicate.patient_id, "confirm": "yes"})
    assert response.status_code == 302
    assert Patient.objects.get(pk=duplicate.pk).merged_into_id == biscuit.pk
    assert Visit.objects.get().patient_id == biscuit.pk
    assert AuditEntry.objects.filter(action="merge", user=staff["veterinarian"]).exists()
    # The duplicate's page now leads to the survivor.
    assert client.get(reverse("patient_detail", args=[duplicate.pk]))["Location"] == reverse(
        "patient_detail", args=[biscuit.pk]
    )


@pytest.mark.parametrize("other, error", [
    ("NOPE", "No patient has the ID NOPE"),
    ("self", "That is this patient"),
    ("cat", "is a Cat, not a Dog"),
])  # fmt: skip
def test_merge_explains_what_it_cannot_merge(client, staff, biscuit, make_patient, cat, other, error):
    pepper = make_patient("Pepper", species=cat)
    value = {"NOPE": "NOPE", "self": biscuit.patient_id, "cat": pepper.patient_id}[other]
    response = client_for(client, staff["admin"]).post(
        reverse("patient_merge", args=[biscuit.pk]), {"other": value, "confirm": "yes"}
    )
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Patient.objects.filter(merged_into__isnull=False).exists()


def test_a_missing_patient_is_a_404_page(client, staff):
    assert (
        client_for(client, staff["front desk"]).get(reverse("patient_detail", args=[99999])).status_code
        == 404
    )
