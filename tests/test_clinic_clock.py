"""The clinic's clock (vetclinic/clock.py) is an input: pinned, the scheduling pages behave the
same at any hour the suite runs. After closing time the board and the order form say the clinic
is closed and offer the next day; a start time that has passed is refused at the desk unless
the exam took place already, and recorded as it comes from a PMS."""

import os
import subprocess
import sys
from datetime import datetime, time

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.timezone import make_aware

from imaging.models import ImagingOrder, Modality, Procedure
from imaging.orders import services as orders
from tests.conftest import ROOT
from vetclinic import clock
from vetclinic.audit.models import Channel
from vetclinic.audit.services import Actor

pytestmark = pytest.mark.django_db
MONDAY = datetime(2026, 11, 23).date()


def at(hour, minute=0, day=MONDAY):
    return make_aware(datetime.combine(day, time(hour, minute)))


@pytest.fixture
def dog(make_owner, make_patient):
    return make_patient("Biscuit", owner=make_owner("Hartley"))


@pytest.fixture
def dr(db):
    return Modality.objects.create(ae_title="DRROOM", modality_type="DX", location="X-ray room")


@pytest.fixture
def desk(client, staff):
    client.force_login(staff["front desk"])
    return client


def test_the_clock_reads_the_pinned_moment_in_this_process_and_in_the_processes_it_starts(settings):
    settings.CLOCK_NOW = "2026-11-23T19:30:00"
    assert (clock.localnow().date(), clock.localnow().time()) == (MONDAY, time(19, 30))
    shown = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from vetclinic import clock; print(clock.today())"],
        cwd=ROOT, env={**os.environ, "DJANGO_SETTINGS_MODULE": "vetclinic.settings", "VETPACS_NOW": "2027-02-01T08:00"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shown.stdout.strip() == "2027-02-01"


def test_after_closing_time_the_board_says_the_clinic_is_closed_and_offers_the_next_day(desk, dr, settings):
    settings.CLOCK_NOW = "2026-11-23T19:30:00"
    page = desk.get(reverse("order_board")).content.decode()
    assert "The clinic has closed for today" in page and "fully booked" not in page
    assert "?day=2026-11-24" in page and "Book on Tue 24 Nov" in page
    assert not ImagingOrder.objects.exists()


def test_before_closing_the_board_offers_what_is_left_of_the_day(desk, dr, settings):
    settings.CLOCK_NOW = "2026-11-23T18:00:00"
    page = desk.get(reverse("order_board")).content.decode()
    assert "closed" not in page and "+ 18:00–19:00" in page


def test_after_closing_time_the_order_form_opens_on_the_next_day(desk, dog, dr, settings):
    settings.CLOCK_NOW = "2026-11-23T19:30:00"
    page = desk.get(reverse("order_create"), {"patient": dog.pk}).content.decode()
    assert 'name="day" value="2026-11-24"' in page
    slots = desk.get(reverse("order_slots"), {"station": dr.pk, "day": "2026-11-23"}).content.decode()
    assert "the clinic has closed for today" in slots and "Tue 24 Nov" in slots


def _order_post(desk, dog, dr, **extra):
    thorax = Procedure.objects.get(code="DX-THX2")
    data = {"procedure": thorax.pk, "station": dr.pk, "day": "2026-11-23", "time": "10:30", "priority": "ROUTINE",
            **extra}  # fmt: skip
    return desk.post(reverse("order_create") + f"?patient={dog.pk}", data)


def test_the_desk_cannot_book_a_time_that_has_passed_without_saying_it_was_done(desk, dog, dr, settings):
    settings.CLOCK_NOW = "2026-11-23T14:00:00"
    response = _order_post(desk, dog, dr)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Mon 23 Nov 2026 10:30 has passed" in page and "Done already" in page
    assert not ImagingOrder.objects.exists()
    response = _order_post(desk, dog, dr, past_ok="on")  # an emergency imaged before it was booked
    assert response.status_code == 302
    assert ImagingOrder.objects.get().scheduled_start == at(10, 30)


def test_the_order_form_warns_as_soon_as_the_time_typed_has_passed(desk, dr, settings):
    settings.CLOCK_NOW = "2026-11-23T14:00:00"
    fragment = desk.get(
        reverse("order_slots"), {"station": dr.pk, "day": "2026-11-23", "time": "1030"}
    ).content.decode()
    assert "That time has passed" in fragment and 'name="past_ok"' in fragment
    fragment = desk.get(
        reverse("order_slots"), {"station": dr.pk, "day": "2026-11-23", "time": "1500"}
    ).content.decode()
    assert "That time has passed" not in fragment


def test_the_animal_being_imaged_now_can_be_booked_for_the_slot_that_started(dog, dr, staff, settings):
    settings.CLOCK_NOW = "2026-11-23T10:40:00"
    desk = Actor.for_user(staff["front desk"])
    order = orders.order_create(actor=desk, patient=dog, procedure=Procedure.objects.get(code="DX-THX2"),
                                station=dr, scheduled_start=at(10, 30))  # fmt: skip
    assert ImagingOrder.objects.get(pk=order.pk).scheduled_start == at(10, 30)


@pytest.mark.parametrize("channel", [Channel.HL7, Channel.API, Channel.SYSTEM])
def test_a_pms_records_an_order_whose_time_has_passed(dog, dr, settings, channel):
    settings.CLOCK_NOW = "2026-11-23T14:00:00"
    order = orders.order_create(actor=Actor(channel=channel, name="Acme PMS"), patient=dog,
                                procedure=Procedure.objects.get(code="DX-THX2"), scheduled_start=at(9))  # fmt: skip
    assert ImagingOrder.objects.get(pk=order.pk).scheduled_start == at(9)


def test_the_desk_cannot_move_an_order_into_the_past_but_may_leave_it_where_it_is(
    actor, dog, dr, staff, settings
):
    order = orders.order_create(actor=actor, patient=dog, procedure=Procedure.objects.get(code="DX-THX2"),
                                station=dr, scheduled_start=at(9))  # fmt: skip
    settings.CLOCK_NOW = "2026-11-23T14:00:00"
    desk = Actor.for_user(staff["front desk"])
    with pytest.raises(ValidationError) as refused:
        orders.order_reschedule(actor=desk, order=order, scheduled_start=at(11))
    assert "has passed" in str(refused.value.message_dict["scheduled_start"])
    orders.order_reschedule(actor=desk, order=order, scheduled_start=at(9), station=dr)  # unchanged: fine
    orders.order_reschedule(actor=desk, order=order, scheduled_start=at(16))
    assert ImagingOrder.objects.get(pk=order.pk).scheduled_start == at(16)
