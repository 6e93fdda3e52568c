import pytest
from django.urls import reverse

from patients.models import Breed, CodeMapping, Species
from patients.selectors import coded_breed, coded_species
from patients.vocabulary import vocabulary_load

pytestmark = pytest.mark.django_db


def test_the_migration_loads_dicom_species_and_breeds():
    dog = Species.objects.get(scheme="SCT", code="448771007")
    assert dog.meaning == "Canis lupus familiaris"
    for meaning in ["Felis catus", "Equus caballus", "Bos taurus", "Ovis aries", "Oryctolagus cuniculus"]:
        assert Species.objects.filter(meaning=meaning).exists(), meaning
    assert {"companion", "equine", "farm", "exotic"} <= set(Species.objects.values_list("group", flat=True))
    # CID 7480 breeds, and the CID 7486 mixed breeds flagged.
    assert Breed.objects.get(code="62137007").species == dog  # Labrador retriever
    assert Breed.objects.get(code="132619000", is_mixed=True).species == dog  # mixed breed dog
    for species, at_least in [("Dog", 300), ("Cat", 50), ("Horse", 300)]:
        assert Breed.objects.filter(species__name=species).count() >= at_least


def test_loading_the_vocabulary_again_keeps_a_clinics_edits():
    Species.objects.filter(code="448771007").update(name="Canine")
    count = Breed.objects.count()
    vocabulary_load(Species, Breed)
    assert Species.objects.get(code="448771007").name == "Canine"
    assert Breed.objects.count() == count


def test_a_clinic_adds_its_own_species_in_the_admin_and_the_front_desk_can_choose_it(client, staff):
    client.force_login(staff["admin"])
    response = client.post(
        reverse("admin:patients_species_add"),
        {"scheme": "99VETPACS", "code": "AXOLOTL", "meaning": "Ambystoma mexicanum", "name": "Axolotl",
         "group": "exotic", "is_local": "on", "active": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    client.force_login(staff["front desk"])
    assert "Axolotl" in client.get(reverse("patient_create")).content.decode()


def test_the_crosswalk_maps_another_systems_codes_and_snomed_is_taken_as_it_is(dog, labrador):
    CodeMapping.objects.create(system="vetspace", kind="species", external_code="K9", species=dog)
    CodeMapping.objects.create(system="vetspace", kind="breed", external_code="LAB", breed=labrador)

    assert coded_species(system="vetspace", code="K9") == dog
    assert coded_breed(system="vetspace", code="LAB") == labrador
    assert coded_species(system="SCT", code="448771007") == dog
    assert coded_species(system="vetspace", code="448771007") is None  # unmapped: the caller decides
    assert coded_breed(system="other", code="LAB") is None
