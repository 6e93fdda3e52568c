import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import RequestFactory

from imaging.models import ImagingOrder
from patients.models import Owner, Patient, Species, Visit
from patients.selectors import patient_search
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_a_clinic_to_click_through_and_prints_the_logins(capsys):
    call_command("seed_demo")
    out = capsys.readouterr().out

    for username, password, group in [
        ("frontdesk", "frontdesk-demo", "front desk"),
        ("vet", "vet-demo", "veterinarian"),
        ("radiologist", "radiologist-demo", "radiologist"),
        ("admin", "admin-demo", "admin"),
    ]:
        assert f"{username}" in out and password in out
        # As the login page does: with the request, which the login throttle (django-axes) needs.
        user = authenticate(RequestFactory().post("/login/"), username=username, password=password)
        assert user is not None and user.groups.filter(name=group).exists()
    assert Owner.objects.count() == 5
    assert Species.objects.filter(patients__isnull=False).distinct().count() >= 5
    assert Visit.objects.count() == 5
    assert [p.name for p in patient_search(query="hartley")] == ["Biscuit", "Pepper"]
    assert "findscu -W" in out


def test_seed_demo_schedules_todays_worklist(capsys):
    from pydicom.dataset import Dataset

    from imaging.orders.worklist import worklist_items
    from vetclinic import clock

    call_command("seed_demo")
    query, step = Dataset(), Dataset()
    step.Modality = "DX"
    step.ScheduledStationAETitle = "DRROOM"
    step.ScheduledProcedureStepStartDate = clock.today().strftime("%Y%m%d")
    query.ScheduledProcedureStepSequence = [step]
    found = [(o.patient.name, o.procedure.code, o.status) for o in worklist_items(identifier=query)]
    assert found == [
        ("Biscuit", "DX-LIMB", "arrived"),
        ("Rocco", "DX-THX2", "scheduled"),
        ("Comet", "DX-FOOT", "scheduled"),
    ]
    assert ImagingOrder.objects.count() == 8


def test_seed_demo_twice_changes_nothing(capsys):
    call_command("seed_demo")
    counts = (Owner.objects.count(), Patient.objects.count(), Visit.objects.count(), ImagingOrder.objects.count(),
              AuditEntry.objects.count())  # fmt: skip
    call_command("seed_demo")
    assert (Owner.objects.count(), Patient.objects.count(), Visit.objects.count(), ImagingOrder.objects.count(),
            AuditEntry.objects.count()) == counts  # fmt: skip


def test_seed_demo_if_empty_leaves_a_clinic_with_users_alone(staff, capsys):
    call_command("seed_demo", "--if-empty")
    assert "not added" in capsys.readouterr().out
    assert Owner.objects.count() == 0
