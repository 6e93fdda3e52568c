"""Edits at the same moment of animals that share an owner, and of the owner: an owner's words are
its animals' too, so each edit deletes search words the others delete."""

import threading

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from patients.models import Owner, Patient, SearchTerm, Species
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


def test_an_owners_edit_deletes_its_words_without_reading_the_whole_table(reference_data):
    """The delete locks the words in id order and then finds them by primary key, whatever the
    planner knows of the table. Written as ``id IN (SELECT ... FOR UPDATE)`` it was joined to a
    scan of every word while the table had no statistics (as after a bulk load, before
    autovacuum's first analyse): every phone change read the whole index of names."""
    if connection.vendor != "postgresql":
        pytest.skip("the statement with the lock is PostgreSQL's")
    actor = Actor.system("test")
    owner = owner_upsert(actor=actor, fields={"family_name": "Hartley", "phone": "07700 900123"})
    dog = Species.objects.get(code="448771007")
    patient_upsert(actor=actor, fields={"name": "Biscuit", "species": dog}, owner=owner)
    others = Patient.objects.bulk_create(Patient(name=f"Pup{n}", species=dog) for n in range(500))
    SearchTerm.objects.bulk_create(
        SearchTerm(term=f"word{n}", patient=animal) for animal in others for n in range(10)
    )
    with connection.cursor() as cursor:  # what the planner knows of a table never analysed
        cursor.execute("DELETE FROM pg_statistic WHERE starelid = 'patients_searchterm'::regclass")
    with CaptureQueriesContext(connection) as queries:
        owner_upsert(actor=actor, fields={"phone": "07700 900124"}, owner=Owner.objects.get(pk=owner.pk))
    (delete,) = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE FROM patients_searchterm")
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {delete}")
        plan = cursor.fetchone()[0]
        transaction.set_rollback(True)

    def scans(node):
        yield node.get("Node Type"), node.get("Relation Name"), node.get("Index Name")
        for child in node.get("Plans", []):
            yield from scans(child)

    found = list(scans(plan[0]["Plan"]))
    assert ("Seq Scan", "patients_searchterm", None) not in found, found
    assert any(
        kind.endswith("Index Scan") and index == "patients_searchterm_pkey" for kind, _, index in found
    ), found
    assert set(SearchTerm.objects.filter(owner=owner).values_list("term", flat=True)) >= {
        "07700900124",
        "hartley",
    }
