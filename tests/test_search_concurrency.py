"""Edits at the same moment of animals that share an owner, and of the owner: an owner's words are
its animals' too, so each edit deletes search words the others delete."""

import threading

import pytest
from django.db import connection, connections

from patients.models import Owner, Patient, Species
from patients.services import owner_upsert, patient_upsert
from vetclinic.audit.services import Actor
from vetclinic.transactions import retried

pytestmark = pytest.mark.django_db(transaction=True)

THREADS, EDITS = 4, 30


def test_animals_of_one_owner_edited_at_once_never_deadlock(reference_data):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite takes one writer at a time: nothing to deadlock")
    actor = Actor.system("test")
    owner = owner_upsert(actor=actor, fields={"family_name": "Hartley"})
    dog = Species.objects.get(code="448771007")
    animals = [
        patient_upsert(actor=actor, fields={"name": f"Pup{n}", "species": dog}, owner=owner)
        for n in range(THREADS)
    ]
    errors, start = [], threading.Barrier(THREADS)

    def edit(animal):
        try:
            start.wait()
            for n in range(EDITS):
                patient_upsert(
                    actor=actor, fields={"name": f"{animal.name[:4]}{n} Biscuit{n}"}, patient=animal
                )
        except Exception as error:  # what a request would have answered with a 500
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=edit, args=(animal,)) for animal in animals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    last = EDITS - 1
    assert sorted(Patient.objects.values_list("name", flat=True)) == [
        f"Pup{n}{last} Biscuit{last}" for n in range(THREADS)
    ]


def test_a_transaction_postgresql_undoes_for_a_deadlock_is_run_again_and_both_are_applied(reference_data):
    """Two saves that lock the same two owners in opposite orders: PostgreSQL undoes one
    ("deadlock detected"); ``retried`` runs it again, so both are applied, not one a 500."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite takes one writer at a time: nothing to deadlock")
    actor = Actor.system("test")
    first, second = (owner_upsert(actor=actor, fields={"family_name": name}) for name in ("Ash", "Birch"))
    both_hold_one, runs, errors = threading.Barrier(2), [], []

    def save(one, other, note):
        def work():
            runs.append(note)
            Owner.objects.filter(pk=one.pk).update(notes=note)
            if runs.count(note) == 1:  # the first run waits until the other holds its row too
                both_hold_one.wait(timeout=30)
            Owner.objects.filter(pk=other.pk).update(notes=note)

        try:
            retried(work)
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=save, args=(first, second, "a")),
        threading.Thread(target=save, args=(second, first, "b")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sorted(runs) in (["a", "a", "b"], ["a", "b", "b"])  # one of them ran twice
    notes = set(Owner.objects.filter(pk__in=[first.pk, second.pk]).values_list("notes", flat=True))
    assert len(notes) == 1  # the one run again wrote both rows last
