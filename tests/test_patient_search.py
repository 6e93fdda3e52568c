from datetime import date

import pytest

from patients.models import Owner, Patient, SearchTerm
from patients.search import dicom_name_key, patient_terms, search_terms_refresh
from patients.selectors import owner_search, patient_search
from patients.services import owner_upsert, ownership_set, patient_merge, patient_upsert

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
    owner_upsert(
        actor=actor, owner=clinic["jane"], fields={"family_name": "Okafor", "email": "jane@okafor.example"}
    )
    assert [p.name for p in patient_search(query="okafor")] == ["Biscuit", "Pepper"]
    assert list(patient_search(query="hartley")) == []


def test_a_new_phone_for_an_owner_known_by_its_external_id_is_found_at_once(clinic, actor):
    fields = {
        "kind": Owner.Kind.ORGANISATION,
        "organisation_name": "Greenfield Farm",
        "phone": "01632 960999",
    }
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


def test_search_asks_the_database_a_fixed_number_of_questions(
    clinic, django_assert_max_num_queries, make_patient
):
    for n in range(30):
        make_patient(f"Hartley dog {n}", owner=clinic["jane"])
    with django_assert_max_num_queries(3):
        results = list(patient_search(query="hartley"))
        [p.primary_owner for p in results]
    assert len(results) == 25


def _stored_and_expected(patient_pks):
    """(stored words and name key, the words and key the model defines) per animal."""
    stored, expected = {}, {}
    patients = Patient.objects.filter(pk__in=patient_pks).prefetch_related(
        "aliases", "external_ids", "ownerships__owner__external_ids"
    )
    for patient in patients:
        words = set(SearchTerm.objects.filter(patient=patient).values_list("term", flat=True))
        if patient.merged_into_id is None:
            stored[patient.pk] = (words, patient.dicom_name_key)
            expected[patient.pk] = (patient_terms(patient), dicom_name_key(patient))
        else:  # an alias is found through its survivor; it keeps no words (its key is history)
            stored[patient.pk], expected[patient.pk] = words, set()
    return stored, expected


def test_the_stored_words_and_name_key_are_what_the_model_defines(clinic, actor, make_owner, make_patient):
    """The refresh reads rows, not model instances: it must agree with patient_terms and
    dicom_name_key (the definitions on the model) in every case it reads: aliases, external
    ids of animals and owners, organisations, co-owners, a primary owner that moves."""
    jane, farm = clinic["jane"], clinic["farm"]
    duplicate = make_patient("Biscuit", owner=jane, microchip="985141000999999")
    patient_upsert(actor=actor, patient=duplicate, fields={}, external=("vetspace", "PET-77"))
    patient_merge(actor=actor, source=duplicate, target=clinic["biscuit"])
    co_owner = make_owner("Okafor", given_name="Chidi", email="chidi@example.org")
    owner_upsert(actor=actor, owner=co_owner, fields={}, external=("vetspace", "ACC-5"))
    ownership_set(actor=actor, patient=clinic["rocco"], owner=co_owner, primary=True)
    ownership_set(actor=actor, patient=clinic["daisy"], owner=co_owner)
    owner_upsert(actor=actor, owner=farm, fields={"organisation_name": "Greenfield Farms Ltd"})

    pks = [p.pk for p in Patient.objects.all()]
    stored, expected = _stored_and_expected(pks)
    assert stored == expected
    assert stored[clinic["rocco"].pk][1] == "OKAFOR^ROCCO"
    assert {"pet", "77", "chidi", "acc", "5"} <= stored[clinic["biscuit"].pk][0] | stored[clinic["rocco"].pk][
        0
    ]
    assert "greenfield" in stored[clinic["daisy"].pk][0] and "chidi" in stored[clinic["daisy"].pk][0]

    # Rewriting everything at once (as manage.py search_reindex does) changes nothing.
    SearchTerm.objects.all().delete()
    Patient.objects.update(dicom_name_key="")
    search_terms_refresh(patients=Patient.objects.all(), owners=Owner.objects.all())
    assert _stored_and_expected(pks) == (stored, expected)
    assert set(SearchTerm.objects.filter(owner=farm).values_list("term", flat=True)) == {
        "greenfield",
        "farms",
        "ltd",
        "acc",
        "991",
    }


def test_an_owner_edit_rewrites_the_words_of_each_of_its_animals_in_a_fixed_number_of_statements(
    clinic, actor, make_patient, django_assert_max_num_queries
):
    jane = clinic["jane"]
    for n in range(20):
        make_patient(f"Puppy {n}", owner=jane)
    with django_assert_max_num_queries(4):  # read, delete, insert, and the name keys are unchanged
        search_terms_refresh(owners=[jane], owners_animals=True)
    # One statement per renamed animal besides: the owner's family name is in their name key.
    with django_assert_max_num_queries(8 + 22):
        owner_upsert(actor=actor, owner=jane, fields={"family_name": "Okafor"})
    assert len(patient_search(query="okafor puppy")) == 20
    stored, expected = _stored_and_expected([p.pk for p in jane.patients.all()])
    assert stored == expected
