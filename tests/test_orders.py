"""Order services: scheduling, numbering, and the status rules every channel goes through."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from imaging.models import ImagingOrder, Procedure
from imaging.orders import services as orders
from imaging.orders.selectors import free_slots, procedures_for, station_conflicts
from vetclinic.audit.models import AuditEntry

Status = ImagingOrder.Status
AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def biscuit(make_owner, make_patient):
    return make_patient("Biscuit", owner=make_owner("Hartley"))


def test_an_order_gets_an_accession_number_ids_and_a_study_uid(biscuit, make_order):
    order = make_order(biscuit)
    assert order.accession_number == f"VP{order.pk:08d}"
    assert len(order.accession_number) <= 16
    assert order.requested_procedure_id == f"RP{order.pk}"
    assert order.scheduled_step_id == f"SPS{order.pk}"
    assert order.study_instance_uid.startswith("2.25.")
    assert order.status == Status.SCHEDULED
    assert order.modality_type == "DX"
    assert order.duration_minutes == Procedure.objects.get(code="DX-THX2").duration_minutes
    assert [(c.old, c.new) for c in order.status_changes.all()] == [("", "scheduled")]
    assert AuditEntry.objects.filter(object_id=str(order.pk), action="create").exists()


@override_settings(DICOM_UID_ROOT="1.2.826.0.1.3680043.10.999", ACCESSION_PREFIX="CLIN")
def test_the_clinic_prefix_and_uid_root_are_used(biscuit, make_order):
    order = make_order(biscuit)
    assert order.accession_number == f"CLIN{order.pk:08d}"
    assert order.study_instance_uid.startswith("1.2.826.0.1.3680043.10.999.")
    assert len(order.study_instance_uid) <= 64
    assert make_order(biscuit).study_instance_uid != order.study_instance_uid


def test_the_weight_on_the_day_goes_into_the_weight_history(biscuit, make_order):
    make_order(biscuit, weight_kg="23.4")
    assert biscuit.current_weight == Decimal("23.4")


def test_a_procedure_for_other_species_is_refused(make_patient, cat, make_order):
    tiddles = make_patient("Tiddles", species=cat)
    with pytest.raises(ValidationError) as error:
        make_order(tiddles, code="DX-ELBW")  # elbow dysplasia screening: dogs only
    assert "not offered for a cat" in str(error.value.message_dict["procedure"])
    assert not ImagingOrder.objects.exists()
    assert "DX-ELBW" not in {p.code for p in procedures_for(species=cat)}
    assert {"DX-THX2", "US-ABD", "IO-DENT"} <= {p.code for p in procedures_for(species=cat)}


def test_a_station_of_another_modality_is_refused(biscuit, make_order, stations):
    with pytest.raises(ValidationError) as error:
        make_order(biscuit, code="US-ABD", station=stations["DX"])
    assert "needs US" in str(error.value.message_dict["station"])


def test_without_a_station_the_only_one_of_its_modality_is_chosen(biscuit, make_order):
    order = make_order(biscuit, code="US-ECHO", station=None)
    assert order.station.ae_title == "USROOM"


def test_a_deceased_animal_cannot_be_scheduled(make_patient, make_order):
    with pytest.raises(ValidationError):
        make_order(make_patient("Old Tom", deceased=True))


def test_an_order_of_a_merged_animal_goes_to_the_survivor(make_patient, make_order, actor):
    from patients.services import patient_merge

    a, b = make_patient("Rex"), make_patient("Rex")
    patient_merge(actor=actor, source=a, target=b)
    assert make_order(a).patient == b


@pytest.mark.parametrize(
    "path, allowed",
    [
        ([Status.ARRIVED, Status.IN_PROGRESS, Status.COMPLETED, Status.REPORTED], True),
        ([Status.CANCELLED, Status.ARRIVED], False),
        ([Status.IN_PROGRESS, Status.SCHEDULED], False),
        ([Status.IN_PROGRESS, Status.DISCONTINUED, Status.SCHEDULED], True),
        ([Status.COMPLETED, Status.CANCELLED], False),
    ],
)
def test_status_changes_follow_the_rules(biscuit, make_order, actor, path, allowed):
    order = make_order(biscuit)
    try:
        for status in path:
            order = orders.order_status_set(actor=actor, order=order, status=status)
    except ValidationError as error:
        assert not allowed, error
        order.refresh_from_db()
        assert order.status == path[path.index(status) - 1] if path.index(status) else Status.SCHEDULED
    else:
        assert allowed
        assert order.status == path[-1]
        assert [c.new for c in order.status_changes.all()] == ["scheduled", *path]
        assert all(c.channel == "system" and c.by == "tests" for c in order.status_changes.all())


def test_setting_the_same_status_again_changes_nothing(biscuit, make_order, actor):
    order = orders.order_arrive(actor=actor, order=make_order(biscuit))
    count = AuditEntry.objects.count()
    orders.order_arrive(actor=actor, order=order)
    assert AuditEntry.objects.count() == count
    assert order.status_changes.count() == 2


def test_reschedule_moves_the_slot_and_revives_a_discontinued_order(biscuit, make_order, actor):
    order = make_order(biscuit)
    orders.order_status_set(actor=actor, order=order, status=Status.IN_PROGRESS)
    with pytest.raises(ValidationError):
        orders.order_reschedule(actor=actor, order=order, scheduled_start=AT + timedelta(days=1))
    orders.order_status_set(actor=actor, order=order, status=Status.DISCONTINUED)
    order = orders.order_reschedule(actor=actor, order=order, scheduled_start=AT + timedelta(days=1))
    assert order.status == Status.SCHEDULED
    assert order.scheduled_start == AT + timedelta(days=1)
    assert AuditEntry.objects.filter(object_id=str(order.pk), action="reschedule").exists()


def test_cancel_keeps_the_reason(biscuit, make_order, actor):
    order = orders.order_cancel(actor=actor, order=make_order(biscuit), reason="owner called")
    assert order.status == Status.CANCELLED
    assert order.status_changes.last().note == "owner called"


def test_update_changes_the_details_and_audits_what_changed(biscuit, make_order, actor):
    order = orders.order_update(actor=actor, order=make_order(biscuit, reason="Cough"), fields={
        "teleradiology": True, "priority": "STAT", "reason": "Cough", "weight_kg": Decimal("23.4"),
    })  # fmt: skip
    stored = ImagingOrder.objects.get(pk=order.pk)
    assert (stored.teleradiology, stored.priority, stored.reason, stored.weight_kg) == (
        True, "STAT", "Cough", Decimal("23.400")
    )  # fmt: skip
    entry = AuditEntry.objects.get(object_id=str(order.pk), action="update")
    assert set(entry.changes) == {"teleradiology", "priority", "weight_kg"}  # not the reason it had
    assert biscuit.current_weight == Decimal("23.4")  # as when an order is made with a weight


def test_update_with_the_values_it_has_writes_nothing(biscuit, make_order, actor):
    order = make_order(biscuit, reason="Cough", priority="HIGH")
    count, updated = AuditEntry.objects.count(), order.updated
    orders.order_update(actor=actor, order=order, fields={"reason": "Cough", "priority": "HIGH",
                                                          "teleradiology": False})  # fmt: skip
    assert AuditEntry.objects.count() == count
    assert ImagingOrder.objects.get(pk=order.pk).updated == updated


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.CANCELLED])
def test_update_of_a_closed_order_is_refused_as_its_state_and_changes_nothing(
    biscuit, make_order, actor, status
):
    order = make_order(biscuit)
    orders.order_status_set(actor=actor, order=order, status=status)
    with pytest.raises(ValidationError) as error:
        orders.order_update(actor=actor, order=order, fields={"teleradiology": True})
    assert error.value.error_dict["status"][0].code == orders.STATE
    assert "its details can no longer be changed" in error.value.messages[0]
    assert ImagingOrder.objects.get(pk=order.pk).teleradiology is False
    # The values it has are no change, so a PMS resending its order is not refused.
    orders.order_update(actor=actor, order=order, fields={"teleradiology": False})


def test_update_refuses_another_animals_visit_and_a_weight_of_nothing(
    biscuit, make_order, make_patient, actor
):
    from patients.services import visit_create

    order = make_order(biscuit)
    other = visit_create(actor=actor, patient=make_patient("Rex"), starts_at=AT)
    with pytest.raises(ValidationError) as error:
        orders.order_update(actor=actor, order=order, fields={"visit": other})
    assert list(error.value.message_dict) == ["visit"]
    with pytest.raises(ValidationError) as error:
        orders.order_update(actor=actor, order=order, fields={"weight_kg": Decimal("0")})
    assert list(error.value.message_dict) == ["weight_kg"]
    stored = ImagingOrder.objects.get(pk=order.pk)
    assert (stored.visit, stored.weight_kg) == (None, None)


def test_images_received_puts_a_scheduled_order_in_progress_once(biscuit, make_order, actor):
    order = orders.order_images_received(actor=actor, order=make_order(biscuit))
    first = order.images_received_at
    assert order.status == Status.IN_PROGRESS and first
    order = orders.order_images_received(actor=actor, order=order)
    assert order.images_received_at == first


def test_conflicts_and_free_slots_see_the_booked_station(biscuit, make_order, stations, settings):
    settings.CLINIC_OPENS, settings.CLINIC_CLOSES, settings.SLOT_MINUTES = "09:00", "12:00", 15
    booked = make_order(biscuit, at=AT)  # 10:00-10:15 UTC on the DR station
    assert station_conflicts(station=stations["DX"], start=AT + timedelta(minutes=10), minutes=15) == [booked]
    assert station_conflicts(station=stations["DX"], start=AT + timedelta(minutes=15), minutes=15) == []
    assert station_conflicts(station=stations["US"], start=AT, minutes=15) == []
    slots = free_slots(station=stations["DX"], day=AT.date(), minutes=15)
    assert [s.strftime("%H:%M") for s in slots] == [
        "09:00",
        "09:15",
        "09:30",
        "09:45",
        "10:15",
        "10:30",
        "10:45",
        "11:00",
        "11:15",
        "11:30",
        "11:45",
    ]

    moving = [
        s.strftime("%H:%M")
        for s in free_slots(station=stations["DX"], day=AT.date(), minutes=15, exclude=booked)
    ]
    assert "10:00" in moving  # an order being rescheduled does not block its own slot


def test_a_cancelled_order_frees_its_slot(biscuit, make_order, stations, actor):
    booked = make_order(biscuit, at=AT)
    orders.order_cancel(actor=actor, order=booked)
    assert station_conflicts(station=stations["DX"], start=AT, minutes=15) == []
