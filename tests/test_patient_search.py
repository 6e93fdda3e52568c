from datetime import date

import pytest

from patients.models import Owner, SearchTerm
from patients.selectors import owner_search, patient_search
from patients.services import owner_upsert, patient_merge, patient_upsert

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinic(actor, dog, cat, make_owner, make_patient):
    jane = make_owner(
        given_name="Jane", phone="01632 960123", mobile="+44 7700 900123", email="jane.hartley@example.org"
    )
    lucia = make_owner("García", given_name="Lucía", mobile="07700 900789")
    farm = owner_upsert(
        actor=actor, fields={"kind": Owner.Kind.ORGANISATION, "organisation_name": "Greenfield Farm"},
        external=("vetspace", "ACC-991"),
    )  # fmt: skip
    biscuit = make_patient("Biscuit", owner=jane, microchip="985141000123456")
    pepper = make_patient("Pepper", owner=jane, species=cat)
    rocco = make_patient("Rocco", owner=lucia)
    daisy = make_patient("Daisy Mae", owner=farm)
    patient_upsert(actor=actor, patient=rocco, fields={}, external=("vetspace", "PET-42"))
    return {"biscuit": biscuit, "pepper": pepper, "rocco": rocco, "daisy": daisy, "jane": jane, "farm": farm}


@pytest.mark.parametrize(
    "query, expected",
    [
        ("bisc", ["biscuit"]),  # animal name prefix
        ("BISCUIT", ["biscuit"]),  # any case
        ("mae", ["daisy"]),  # second word of an animal name
        ("hartley", ["biscuit", "pepper"]),  # owner family name
        ("jane", ["biscuit", "pepper"]),  # owner given name
        ("hartley pep", ["pepper"]),  # every word must match
        ("garcia", ["rocco"]),  # accents do not matter
        ("lucía", ["rocco"]),
        ("greenfield", ["daisy"]),  # organisation
        ("01632 960123", ["biscuit", "pepper"]),  # phone typed with spaces
        ("01632960", ["biscuit", "pepper"]),  # phone prefix
        ("447700900123", ["biscuit", "pepper"]),  # mobile in international form
        ("985141000123456", ["biscuit"]),  # microchip
        ("98514100012", ["biscuit"]),  # microchip prefix
        ("jane.hartley@example.org", ["biscuit", "pepper"]),  # email
        ("pet-42", ["rocco"]),  # the PMS's patient id
        ("acc-991", ["daisy"]),  # the PMS's owner account id
        ("nobody", []),
        ("", []),
        ("  -- ", []),
    ],
)
def test_patient_search_finds_by_each_key(clinic, query, expected):
    assert [p.pk for p in patient_search(query=query)] == [clinic[key].pk for key in expected]


def test_patient_search_finds_by_patient_id(clinic):
    patient_id = clinic["pepper"].patient_id
    assert list(patient_search(query=patient_id.lower())) == [clinic["pepper"]]


def test_an_owner_edit_is_found_at_once(clinic, actor):
    owner_upsert(actor=actor, owner=clinic["jane"], fields={"family_name": "Okafor", "email": "jane@okafor.example"})
    assert [p.name for p in patient_search(query="okafor")] == ["Biscuit", "Pepper"]
    assert list(patient_search(query="hartley")) == []


def test_a_new_phone_for_an_owner_known_by_its_external_id_is_found_at_once(clinic, actor):
    fields = {"kind": Owner.Kind.ORGANISATION, "organisation_name": "Greenfield Farm", "phone": "01632 960999"}
    owner_upsert(actor=actor, fields=fields, external=("vetspace", "ACC-991"))
    assert [p.name for p in patient_search(query="01632960999")] == ["Daisy Mae"]


def test_a_new_owner_of_an_animal_is_found_at_once(clinic, actor, make_owner):
    okafor = make_owner("Okafor")
    patient_upsert(actor=actor, patient=clinic["rocco"], fields={}, owner=okafor)
    assert [p.name for p in patient_search(query="okafor")] == ["Rocco"]


def test_an_update_of_nothing_searched_leaves_the_words_as_they_are(clinic, actor):
    rocco = clinic["rocco"]
    words = list(SearchTerm.objects.filter(patient=rocco).order_by("pk").values_list("pk", "term"))
    patient_upsert(
        actor=actor, patient=rocco, fields={"birth_date": date(2020, 5, 1)}, weight_kg="18.2",
        external=("vetspace", "PET-42"), owner=rocco.owners.get(),
    )  # fmt: skip
    assert list(SearchTerm.objects.filter(patient=rocco).order_by("pk").values_list("pk", "term")) == words
    patient_upsert(actor=actor, patient=rocco, fields={"name": "Rocco Junior"})
    assert [p.name for p in patient_search(query="rocco jun")] == ["Rocco Junior"]


def test_merged_patients_are_not_listed_but_their_id_finds_the_survivor(clinic, actor, make_patient):
    duplicate = make_patient("Biscuit", owner=clinic["jane"])
    patient_merge(actor=actor, source=duplicate, target=clinic["biscuit"])

    assert list(patient_search(query="biscuit")) == [clinic["biscuit"]]
    assert list(patient_search(query=duplicate.patient_id)) == [clinic["biscuit"]]


def test_deceased_animals_are_listed_after_living_ones(clinic, actor, dog, make_patient):
    old = make_patient("Bella", owner=clinic["jane"])
    patient_upsert(actor=actor, patient=old, fields={"deceased": True})
    assert [p.name for p in patient_search(query="hartley")] == ["Biscuit", "Pepper", "Bella"]


def test_owner_search_finds_owners_without_animals(actor):
    owner = owner_upsert(actor=actor, fields={"family_name": "Nguyen", "mobile": "07700 900456"})
    assert list(owner_search(query="nguy")) == [owner]
    assert list(owner_search(query="07700900456")) == [owner]


def test_search_asks_the_database_a_fixed_number_of_questions(clinic, django_assert_max_num_queries, make_patient):
    for n in range(30):
        make_patient(f"Hartley dog {n}", owner=clinic["jane"])
    with django_assert_max_num_queries(3):
        results = list(patient_search(query="hartley"))
        [p.primary_owner for p in results]
    assert len(results) == 25
