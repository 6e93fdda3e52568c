"""vetclinic/cache.py: the one way a process keeps what it looked up."""

import pytest

from integrations.api.clients import api_client_create, api_client_for_key
from integrations.hl7 import messages
from patients.models import CodeMapping, Species
from patients.selectors import coded_species
from vetclinic.cache import Kept, clear_all


def test_a_kept_value_is_returned_until_forgotten():
    kept = Kept("test values", seconds=60)
    kept.set("a", 1)
    kept.set("b", 2)
    assert (kept.get("a"), "b" in kept, kept.get("c", "none")) == (1, True, "none")
    kept.forget("a")
    assert (kept.get("a"), kept.get("b")) == (None, 2)
    kept.forget()
    assert "b" not in kept


def test_a_value_past_its_seconds_is_not_returned():
    kept = Kept("test values", seconds=0)
    kept.set("a", 1)
    assert kept.get("a") is None and "a" not in kept


def test_a_full_kept_is_emptied_before_a_new_key_goes_in():
    kept = Kept("test values", seconds=None, most=2)
    kept.set("a", 1)
    kept.set("b", 2)
    kept.set("b", 3)  # a key already kept does not count as new
    assert (kept.get("a"), kept.get("b")) == (1, 3)
    kept.set("c", 4)
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (None, None, 4)


def test_a_kept_forgets_as_a_signal_receiver_does():
    kept = Kept("test values", seconds=60)
    kept.set("a", 1)
    kept.forget(sender=Species, instance=None, signal=None)
    assert "a" not in kept


@pytest.mark.django_db
def test_clear_all_forgets_keys_codes_and_message_shapes_alike(actor, dog, django_assert_num_queries):
    _, key = api_client_create(actor=actor, name="Acme PMS", scopes=["*"])
    CodeMapping.objects.create(system="PMS", kind=CodeMapping.Kind.SPECIES, external_code="K9", species=dog)
    messages.accepted_shapes.set(("a shape",), True)
    api_client_for_key(key), coded_species(system="PMS", code="K9")
    with django_assert_num_queries(0):
        assert api_client_for_key(key) is not None and coded_species(system="PMS", code="K9") == dog
    clear_all()
    assert ("a shape",) not in messages.accepted_shapes
    with django_assert_num_queries(2):  # both looked up again
        assert api_client_for_key(key) is not None and coded_species(system="PMS", code="K9") == dog
