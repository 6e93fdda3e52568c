"""Reconciliation services and suggestions: link, move, split, and the header rewrite."""

from datetime import date, datetime, time

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.utils.timezone import make_aware

from imaging.ingest import storage
from imaging.models import Instance, InstanceVersion, Study
from imaging.reconcile import services as reconcile
from imaging.reconcile import tasks
from imaging.reconcile.selectors import match_suggestions, reconciliation_queue
from patients.services import patient_merge, visit_create
from tests.studies import DOG, make_study, stored_header
from vetclinic.audit.models import AuditEntry
from vetclinic.roles import ROLES

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("storage_root")]


@pytest.fixture
def biscuit(make_owner, make_patient):
    return make_patient("Biscuit", owner=make_owner("Hartley", given_name="Jane"))


@pytest.fixture
def rex(make_owner, make_patient):
    return make_patient("Rex", owner=make_owner("Okafor", given_name="John"))


def study_audit(study, action):
    return AuditEntry.objects.filter(object_type__model="study", object_id=str(study.pk), action=action)


def test_linking_takes_the_study_out_of_the_queue_audits_it_and_queues_the_rewrite(
    biscuit, actor, queued, django_capture_on_commit_callbacks
):
    study = make_study(name="Hartley^Biscuit", flag="Patient ID P9 is Rex, but the images name 'Biscuit'")
    assert list(reconciliation_queue()) == [study]

    with django_capture_on_commit_callbacks(execute=True):
        reconcile.study_link_manual(actor=actor, study=study, patient=biscuit)

    study.refresh_from_db()
    assert (study.patient, study.link, study.flag) == (biscuit, Study.Link.MANUAL, "")
    assert list(reconciliation_queue()) == []
    entry = study_audit(study, "link").get()
    assert entry.actor == "tests" and entry.changes["patient"] == [None, str(biscuit)]
    assert entry.changes["flag"][1] is None
    assert queued == [study.pk]


def test_the_rewrite_is_queued_only_once_the_link_is_committed(
    biscuit, actor, queued, django_capture_on_commit_callbacks
):
    study = make_study()
    with django_capture_on_commit_callbacks() as callbacks:
        reconcile.study_link_manual(actor=actor, study=study, patient=biscuit)
    assert len(callbacks) == 1 and queued == []  # queued on commit, not before


def test_the_rewrite_makes_the_stored_header_agree_with_the_record_and_keeps_the_original(
    biscuit, actor, queued
):
    study = make_study(name="UNKNOWN^DOG", patient_id="CR-0042", images=2)
    reconcile.study_link_manual(actor=actor, study=study, patient=biscuit)
    instance = Instance.objects.filter(series__study=study).first()
    original_key, original_bytes = instance.storage_key, storage.object_get(instance.storage_key)

    assert reconcile.study_headers_rewrite(study_id=study.pk) == 2

    ds = stored_header(instance)
    assert str(ds.PatientName) == "Hartley^Biscuit"
    assert ds.PatientID == biscuit.patient_id
    assert ds.PatientSpeciesDescription == DOG
    assert ds.PatientSpeciesCodeSequence[0].CodeValue == "448771007"
    assert str(ds.ResponsiblePerson) == "Hartley^Jane" and ds.ResponsiblePersonRole == "OWNER"
    assert ds.StudyInstanceUID == study.study_instance_uid
    assert ds.file_meta.TransferSyntaxUID == instance.transfer_syntax_uid
    assert ds.pixel_array.shape == (128, 128)
    # The original is untouched in storage, and recorded as the first version.
    assert instance.storage_key != original_key and instance.version == 2
    assert storage.object_get(original_key) == original_bytes
    version = InstanceVersion.objects.get(instance=instance)
    assert (version.version, version.storage_key, version.reason) == (
        1,
        original_key,
        InstanceVersion.Reason.REWRITTEN,
    )
    assert instance.file_size == len(storage.object_get(instance.storage_key))
    assert study_audit(study, "headers_rewrite").get().actor == "reconciliation"


def test_the_rewrite_run_again_changes_nothing(biscuit, actor, queued):
    study = make_study()
    reconcile.study_link_manual(actor=actor, study=study, patient=biscuit)
    tasks.study_headers_rewrite_task(study.pk)  # the task calls the service
    keys = set(Instance.objects.values_list("storage_key", flat=True))

    assert reconcile.study_headers_rewrite(study_id=study.pk) == 0
    assert set(Instance.objects.values_list("storage_key", flat=True)) == keys
    assert InstanceVersion.objects.count() == 1
    assert study_audit(study, "headers_rewrite").count() == 1


def test_an_unlinked_study_is_not_rewritten(actor):
    study = make_study()
    assert reconcile.study_headers_rewrite(study_id=study.pk) == 0
    assert not InstanceVersion.objects.exists()


def test_a_study_moves_from_one_patient_to_another(biscuit, rex, actor, queued):
    study = make_study(name="Okafor^Rex", patient=biscuit, link=Study.Link.PATIENT_ID)
    reconcile.study_headers_rewrite(study_id=study.pk)  # the wrong animal's details went in

    reconcile.study_link_manual(actor=actor, study=study, patient=rex)
    reconcile.study_headers_rewrite(study_id=study.pk)

    study.refresh_from_db()
    assert (study.patient, study.link) == (rex, Study.Link.MANUAL)
    assert not biscuit.studies.exists()
    assert study_audit(study, "move").get().changes["patient"] == [str(biscuit), str(rex)]
    instance = Instance.objects.get()
    assert str(stored_header(instance).PatientName) == "Okafor^Rex"
    assert instance.version == 3
    assert list(instance.versions.values_list("version", "reason")) == [(2, "rewritten"), (1, "rewritten")]


def test_splitting_a_series_off_makes_a_new_study_with_a_new_uid(biscuit, rex, actor, queued):
    old = make_study(name="Hartley^Biscuit", patient=biscuit, link=Study.Link.PATIENT_ID, series=2,
                     study_time=time(9, 30), referring_physician="Dr Who")  # fmt: skip
    series = old.series.get(series_number=2)
    instance = series.instances.get()

    new = reconcile.series_split(actor=actor, series=series, patient=rex)

    assert new.study_instance_uid != old.study_instance_uid
    assert (new.patient, new.link) == (rex, Study.Link.MANUAL)
    copied = ["study_date", "study_time", "description", "accession_number", "referring_physician"]
    assert [getattr(new, f) for f in copied] == [getattr(old, f) for f in copied]
    assert list(new.series.all()) == [series]
    assert list(old.series.values_list("series_number", flat=True)) == [1]
    assert study_audit(old, "series_split").exists() and study_audit(new, "split_from").exists()

    reconcile.study_headers_rewrite(study_id=new.pk)
    ds = stored_header(instance)
    assert ds.StudyInstanceUID == new.study_instance_uid
    assert str(ds.PatientName) == "Okafor^Rex" and ds.PatientID == rex.patient_id
    assert Instance.objects.get(series__study=old).version == 1  # the rest of the old study is untouched


def test_a_study_s_only_series_cannot_be_split_off(biscuit, actor):
    study = make_study()
    with pytest.raises(ValidationError, match="move the whole study instead"):
        reconcile.series_split(actor=actor, series=study.series.get(), patient=biscuit)
    assert Study.objects.count() == 1 and not AuditEntry.objects.filter(object_type__model="study").exists()


def test_linking_to_an_animal_of_another_species_is_refused_unless_staff_confirm(
    make_patient, cat, actor, queued
):
    pepper = make_patient("Pepper", species=cat)
    study = make_study(name="^Pepper", species=DOG)

    with pytest.raises(
        ValidationError, match=f"The images say the animal is '{DOG}', but Pepper .* is a Cat"
    ):
        reconcile.study_link_manual(actor=actor, study=study, patient=pepper)
    study.refresh_from_db()
    assert (study.patient, study.link) == (None, Study.Link.UNMATCHED)
    assert not study_audit(study, "link").exists()

    reconcile.study_link_manual(actor=actor, study=study, patient=pepper, species_override=True)
    assert Study.objects.get(pk=study.pk).patient == pepper
    assert study_audit(study, "link").get().changes["species"] == [DOG, "Cat (confirmed by staff)"]


def test_images_that_name_no_species_link_to_any_animal(make_patient, cat, actor, queued):
    pepper = make_patient("Pepper", species=cat)
    study = make_study(species="")
    reconcile.study_link_manual(actor=actor, study=study, patient=pepper)
    assert Study.objects.get(pk=study.pk).patient == pepper


def test_linking_again_to_the_same_animal_says_so(biscuit, actor, queued):
    study = make_study(patient=biscuit, link=Study.Link.MANUAL)
    with pytest.raises(ValidationError, match="already linked to Biscuit"):
        reconcile.study_link_manual(actor=actor, study=study, patient=biscuit)


def test_a_merged_patient_links_to_the_record_it_was_merged_into(biscuit, make_patient, actor, queued):
    duplicate = make_patient("Biscuit")
    patient_merge(actor=actor, source=duplicate, target=biscuit)
    study = make_study()
    reconcile.study_link_manual(actor=actor, study=study, patient=duplicate)
    assert Study.objects.get(pk=study.pk).patient == biscuit


# Suggestions


def test_the_exact_patient_id_comes_first_even_when_the_name_disagrees(biscuit, rex):
    flag = f"Patient ID {rex.patient_id} is Rex, but the images name 'Hartley^Biscuit'"
    study = make_study(name="Hartley^Biscuit", patient_id=rex.patient_id, flag=flag)
    suggestions = match_suggestions(study=study)
    assert [s.patient for s in suggestions] == [rex, biscuit]
    assert suggestions[0].reason == "Same patient ID, dog"
    assert suggestions[1].reason == "Animal's name, owner Hartley, dog"


def test_name_with_owner_and_species_beats_name_alone(make_owner, make_patient, biscuit):
    other_biscuit = make_patient("Biscuit", owner=make_owner("Zhang"))
    study = make_study(name="HARTLEY^BISCUIT", patient_id="")
    assert [s.patient for s in match_suggestions(study=study)] == [biscuit, other_biscuit]


def test_animals_of_another_species_are_not_suggested(make_owner, make_patient, cat, biscuit):
    make_patient("Biscuit", owner=make_owner("Hartley"), species=cat)
    study = make_study(name="Hartley^Biscuit", species="Dog")  # the clinic's name counts too
    assert [s.patient for s in match_suggestions(study=study)] == [biscuit]


def test_an_id_match_of_another_species_is_shown_with_the_reason(make_patient, cat):
    pepper = make_patient("Pepper", species=cat)
    study = make_study(name="^Pepper", patient_id=pepper.patient_id, species=DOG)
    [suggestion] = match_suggestions(study=study)
    assert suggestion.patient == pepper
    assert suggestion.reason == f"Same patient ID, animal's name, but a cat, the images say {DOG}"


def test_a_visit_on_the_study_date_counts(make_patient, actor):
    seen = make_patient("Nala")
    make_patient("Milo")
    visit_create(actor=actor, patient=seen, starts_at=make_aware(datetime(2025, 3, 4, 10, 0)))
    study = make_study(name="", study_date=date(2025, 3, 4))
    [suggestion] = match_suggestions(study=study)
    assert (suggestion.patient, suggestion.reason) == (seen, "Visit that day, dog")


def test_nothing_to_go_on_suggests_nobody(biscuit):
    assert match_suggestions(study=make_study(name="", patient_id="", study_date=None)) == []


def test_suggestions_stop_at_the_limit(make_owner, make_patient):
    owner = make_owner("Hartley")
    for n in range(7):
        make_patient(f"Biscuit{n}", owner=owner)
    assert len(match_suggestions(study=make_study(name="Hartley^Biscuit"), limit=5)) == 5


# Roles


def test_every_role_holds_every_permission_it_names():
    """roles_sync skips models a migration's state lacks; at the end none may be missing."""
    for group_name, by_app in ROLES.items():
        held = set(
            Group.objects.get(name=group_name).permissions.values_list("content_type__app_label", "codename")
        )
        named = {(app, codename) for app, codenames in by_app.items() for codename in codenames}
        assert named <= held, (group_name, named - held)
