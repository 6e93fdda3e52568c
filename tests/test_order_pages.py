"""Scheduling in the web UI: the order form, the day board with its actions, the order page."""

import re
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils.timezone import make_aware

from imaging.models import ImagingOrder, Modality, OrderStatusChange, Procedure
from imaging.orders import services as orders
from tests.conftest import CLINIC_TODAY
from tests.studies import make_study
from vetclinic.audit.models import AuditEntry

pytestmark = pytest.mark.django_db
Status = ImagingOrder.Status
DAY = CLINIC_TODAY + timedelta(days=1)  # tomorrow: every slot of it is still ahead


def at(hour, minute=0, day=DAY):
    return make_aware(datetime.combine(day, time(hour, minute)))


@pytest.fixture
def biscuit(make_owner, make_patient, labrador):
    return make_patient("Biscuit", owner=make_owner("Hartley", given_name="Jane"), breed=labrador)


@pytest.fixture
def dr(db):
    return Modality.objects.create(ae_title="DRROOM", modality_type="DX", location="X-ray room")


@pytest.fixture
def us(db):
    return Modality.objects.create(ae_title="USROOM", modality_type="US", location="Ultrasound room")


@pytest.fixture
def thorax(db):
    return Procedure.objects.get(code="DX-THX2")


@pytest.fixture
def book(actor, biscuit, thorax, dr):
    """An order made through the service, as any channel would."""

    def make(start=None, patient=None, procedure=None, station=None, **details):
        return orders.order_create(
            actor=actor,
            patient=patient or biscuit,
            procedure=procedure or thorax,
            station=station or dr,
            scheduled_start=start or at(10),
            **details,
        )

    return make


def logged_in(client, user):
    client.force_login(user)
    return client


def body(response):
    return response.content.decode()


def new_order_url(patient, **slot):
    return (
        reverse("order_create")
        + "?"
        + "&".join(f"{k}={v}" for k, v in {"patient": patient.pk, **slot}.items())
    )


def form_data(**fields):
    data = {
        "procedure": Procedure.objects.get(code="DX-THX2").pk,
        "station": Modality.objects.get(ae_title="DRROOM").pk,
        "day": DAY.isoformat(),
        "time": "10:30",
        "duration_minutes": "",
        "priority": "ROUTINE",
        "reason": "Coughing for two weeks",
        "referring_vet": "Dr Okafor",
        "performing_vet": "",
        "weight_kg": "31.4",
    }
    data.update(fields)
    return data


def field_errors(response, field):
    """The error text rendered under one field (templates/forms/field.html)."""
    match = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', body(response), re.S)
    return re.sub(r"<[^>]+>", " ", match[1]).strip() if match else ""


# ---------------------------------------------------------------- the order form


def test_the_form_offers_the_animals_procedures_and_opens_on_the_procedure(client, staff, biscuit, dr):
    page = body(logged_in(client, staff["front desk"]).get(new_order_url(biscuit)))
    assert "Schedule imaging for Biscuit" in page
    assert "Thorax 2 views (lateral + VD/DV)" in page and "Elbows (dysplasia screening)" in page
    assert "Foot / hoof (equine)" not in page  # a horse's procedure, not offered for a dog
    assert re.search(r'<select name="procedure"[^>]*autofocus', page)
    assert 'optgroup label="Radiography"' in page
    assert (
        f'value="{DAY.isoformat()}"' not in page and f'value="{CLINIC_TODAY.isoformat()}"' in page
    )  # today by default


def test_the_form_schedules_an_order_through_the_service(client, staff, biscuit, dr, thorax):
    client = logged_in(client, staff["front desk"])
    response = client.post(new_order_url(biscuit), form_data())

    order = ImagingOrder.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("order_detail", args=[order.pk])
    assert (order.patient, order.procedure, order.station, order.status) == (
        biscuit,
        thorax,
        dr,
        Status.SCHEDULED,
    )
    assert order.scheduled_start == at(10, 30)
    assert order.duration_minutes == 15  # the procedure's, the field left empty
    assert (order.reason, order.referring_vet, order.weight_kg) == (
        "Coughing for two weeks",
        "Dr Okafor",
        Decimal("31.4"),
    )
    assert order.accession_number.startswith("VP") and order.study_instance_uid
    assert biscuit.weights.first().kg == Decimal("31.4")  # the service records the weight on the day
    change = OrderStatusChange.objects.get(order=order)
    assert (change.new, change.by, change.channel) == (Status.SCHEDULED, "frontdesk", "ui")
    assert AuditEntry.objects.filter(
        object_id=str(order.pk), action="create", user=staff["front desk"]
    ).exists()


def test_every_bad_input_shows_on_its_own_field_and_nothing_is_saved(client, staff, biscuit, dr):
    client = logged_in(client, staff["front desk"])
    response = client.post(
        new_order_url(biscuit),
        form_data(
            procedure="",
            station="",
            day="31/02/2025",
            time="25:99",
            duration_minutes="2",
            weight_kg="-1",
            priority="SOON",
        ),
    )
    assert response.status_code == 200
    assert "Nothing was saved" in body(response)
    assert "This field is required" in field_errors(response, "procedure")
    assert "This field is required" in field_errors(response, "station")
    assert "Enter a valid date" in field_errors(response, "day")
    assert "Enter a time like 09:30" in field_errors(response, "time")
    assert "greater than or equal to 5" in field_errors(response, "duration_minutes")
    assert "greater than or equal to 0.001" in field_errors(response, "weight_kg")
    assert "Select a valid choice" in field_errors(response, "priority")
    assert 'value="Coughing for two weeks"' in body(response) or "Coughing for two weeks</textarea>" in body(
        response
    )
    assert not ImagingOrder.objects.exists() and not biscuit.weights.exists()


def test_a_procedure_of_another_species_and_a_station_of_another_modality_are_refused(
    client, staff, biscuit, dr, us
):
    client = logged_in(client, staff["front desk"])
    hoof = Procedure.objects.get(code="DX-FOOT")
    response = client.post(new_order_url(biscuit), form_data(procedure=hoof.pk))
    assert "Choose one of the procedures offered for a Dog" in field_errors(response, "procedure")
    response = client.post(new_order_url(biscuit), form_data(station=us.pk))
    assert "USROOM is a US station; Thorax 2 views (lateral + VD/DV) needs DX" in field_errors(
        response, "station"
    )
    assert not ImagingOrder.objects.exists()


def test_a_service_refusal_shows_on_the_form(client, staff, biscuit, dr, actor):
    from patients.services import patient_upsert

    patient_upsert(actor=actor, patient=biscuit, fields={"deceased": True})
    response = logged_in(client, staff["front desk"]).post(new_order_url(biscuit), form_data())
    assert response.status_code == 200
    assert "Biscuit is recorded as deceased" in body(response)
    assert not ImagingOrder.objects.exists()


def test_times_are_read_as_people_type_them(client, staff, biscuit, dr):
    client = logged_in(client, staff["front desk"])
    for typed, expected in [("1045", at(10, 45)), ("9", at(9)), ("14.15", at(14, 15))]:
        client.post(new_order_url(biscuit), form_data(time=typed, book_anyway="on"))
        assert ImagingOrder.objects.latest("id").scheduled_start == expected, typed


def test_double_booking_a_station_is_warned_and_needs_the_tick(client, staff, biscuit, make_patient, book):
    rex = make_patient("Rex")
    booked = book(start=at(10, 30), patient=rex)
    client = logged_in(client, staff["front desk"])

    response = client.post(new_order_url(biscuit), form_data(time="10:35"))
    assert response.status_code == 200
    assert "DRROOM is already booked then" in field_errors(response, "book_anyway")
    page = body(response)
    assert "Rex" in page and booked.accession_number in page  # the clashing order is listed
    assert 'name="book_anyway"' in page
    assert ImagingOrder.objects.count() == 1

    response = client.post(new_order_url(biscuit), form_data(time="10:35", book_anyway="on"))
    assert response.status_code == 302
    assert ImagingOrder.objects.filter(patient=biscuit, scheduled_start=at(10, 35)).exists()


def test_a_cancelled_order_does_not_block_its_slot(client, staff, biscuit, book, actor):
    orders.order_cancel(actor=actor, order=book(start=at(10, 30)))
    response = logged_in(client, staff["front desk"]).post(new_order_url(biscuit), form_data(time="10:30"))
    assert response.status_code == 302


def test_the_station_list_narrows_to_the_procedures_modality(client, staff, dr, us, thorax):
    client = logged_in(client, staff["front desk"])
    echo = Procedure.objects.get(code="US-ECHO")
    options = body(client.get(reverse("order_station_options"), {"procedure": echo.pk}))
    assert "USROOM" in options and "DRROOM" not in options
    assert "Empty: the usual 45." in options  # the duration's help, out of band
    response = client.get(reverse("order_station_options"), {"procedure": thorax.pk})
    assert "DRROOM" in body(response) and "USROOM" not in body(response)
    assert response["HX-Trigger-After-Settle"] == "stations-changed"  # the free times follow


def test_the_free_times_show_and_the_clashes_with_the_chosen_time(client, staff, book, dr, thorax):
    book(start=at(10, 0))
    client = logged_in(client, staff["front desk"])
    page = body(
        client.get(reverse("order_slots"), {"station": dr.pk, "day": DAY.isoformat(), "procedure": thorax.pk})
    )
    assert "08:00–10:00" in page and "10:15–19:00" in page
    assert '<option value="10:15">' in page and '<option value="10:00">' not in page
    page = body(
        client.get(
            reverse("order_slots"),
            {"station": dr.pk, "day": DAY.isoformat(), "time": "10:05", "procedure": thorax.pk},
        )
    )
    assert "DRROOM is already booked then" in page and "Biscuit" in page and 'name="book_anyway"' in page


def test_an_empty_slot_on_the_board_leads_to_the_animal_then_the_form(client, staff, biscuit, dr):
    client = logged_in(client, staff["front desk"])
    slot = {"station": "DRROOM", "day": DAY.isoformat(), "time": "11:15"}
    page = body(client.get(reverse("order_create"), slot))
    assert "Which animal?" in page and "DRROOM" in page
    results = body(
        client.get(
            reverse("order_create"),
            {**slot, "q": "hartley"},
            HTTP_HX_REQUEST="true",
            HTTP_HX_TARGET="pick-results",
        )
    )
    assert "<html" not in results
    link = re.search(r'href="([^"]+)">Biscuit</a>', results)[1].replace("&amp;", "&")
    form = body(client.get(link))
    assert "Schedule imaging for Biscuit" in form
    assert f'value="{DAY.isoformat()}"' in form and 'value="11:15"' in form
    assert re.search(rf'<option value="{dr.pk}" selected>', form)


# ---------------------------------------------------------------- the day board


def test_the_board_fragment_lists_the_days_orders_only(client, staff, book, make_patient, us, actor):
    pepper, rex = make_patient("Pepper"), make_patient("Rex")
    book(start=at(9))
    book(start=at(9, day=DAY + timedelta(days=1)), patient=pepper)
    orders.order_create(
        actor=actor,
        patient=rex,
        procedure=Procedure.objects.get(code="US-ABD"),
        station=us,
        scheduled_start=at(11),
    )
    client = logged_in(client, staff["front desk"])
    url = reverse("order_board")

    fragment = body(client.get(url, {"day": DAY.isoformat()}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="board"))
    assert "<html" not in fragment
    assert "Biscuit" in fragment and "Rex" in fragment and "Pepper" not in fragment
    assert "Hartley" in fragment and "Dog" in fragment and "Thorax 2 views" in fragment and "VP" in fragment

    fragment = body(
        client.get(
            url, {"day": DAY.isoformat(), "station": "USROOM"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="board"
        )
    )
    assert "Rex" in fragment and "Biscuit" not in fragment


def test_the_board_page_groups_orders_by_status_and_links_the_days(client, staff, book, actor):
    waiting, here, gone = book(start=at(9)), book(start=at(10)), book(start=at(11))
    orders.order_arrive(actor=actor, order=here)
    orders.order_cancel(actor=actor, order=gone, reason="Owner called")
    page = body(logged_in(client, staff["front desk"]).get(reverse("order_board"), {"day": DAY.isoformat()}))
    columns = re.split(r'<h2 id="column-', page)
    assert waiting.accession_number in columns[1] and "Scheduled" in columns[1]
    assert here.accession_number in columns[2] and "Arrived" in columns[2]
    assert gone.accession_number in columns[5] and "Cancelled or discontinued" in columns[5]
    assert (
        f"?day={(DAY - timedelta(days=1)).isoformat()}" in page
        and f"?day={(DAY + timedelta(days=1)).isoformat()}" in page
    )
    assert 'hx-trigger="board-refresh' in page  # every 10 s, from js/vetpacs.js
    assert reverse("order_create") + "?station=DRROOM&amp;day=" + DAY.isoformat() in page  # free slots book


def test_an_unknown_station_is_not_found_and_a_bad_day_means_today(client, staff, dr):
    client = logged_in(client, staff["front desk"])
    assert client.get(reverse("order_board"), {"station": "NOPE"}).status_code == 404
    page = body(client.get(reverse("order_board"), {"day": "yesterday"}))
    assert "today" in page and CLINIC_TODAY.strftime("%Y") in page


def test_arrive_on_the_board_swaps_the_card_and_refreshes_the_board(client, staff, book):
    order = book()
    client = logged_in(client, staff["front desk"])
    response = client.post(
        reverse("order_status", args=[order.pk]), {"status": "arrived"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and response["HX-Trigger"] == "orders-changed"
    assert (
        f'id="order-{order.pk}"' in body(response)
        and "Arrived" in body(response)
        and "<html" not in body(response)
    )
    order.refresh_from_db()
    assert order.status == Status.ARRIVED
    assert order.status_changes.last().by == "frontdesk"


def test_cancel_on_the_board_keeps_the_reason(client, staff, book):
    order = book()
    client = logged_in(client, staff["front desk"])
    client.post(
        reverse("order_status", args=[order.pk]),
        {"status": "cancelled", "note": "Owner called"},
        HTTP_HX_REQUEST="true",
    )
    order.refresh_from_db()
    assert order.status == Status.CANCELLED and order.status_changes.last().note == "Owner called"


def test_a_forbidden_transition_shows_an_error_and_changes_nothing(client, staff, book, actor):
    order = book()
    orders.order_status_set(actor=actor, order=order, status=Status.COMPLETED)
    client = logged_in(client, staff["front desk"])

    response = client.post(
        reverse("order_status", args=[order.pk]), {"status": "cancelled"}, HTTP_HX_REQUEST="true"
    )
    assert "it cannot become cancelled" in body(response) and "Nothing was changed" in body(response)
    assert "HX-Trigger" not in response
    response = client.post(
        reverse("order_status", args=[order.pk]), {"status": "arrived", "next": "/orders/board/"}
    )
    assert response.status_code == 302 and response["Location"] == "/orders/board/"
    assert "cannot become arrived" in str(list(response.wsgi_request._messages)[0])
    order.refresh_from_db()
    assert order.status == Status.COMPLETED
    assert order.status_changes.count() == 2


def test_reschedule_on_the_board_moves_the_order(client, staff, book):
    order = book(start=at(10))
    client = logged_in(client, staff["front desk"])
    opened = body(client.get(reverse("order_reschedule", args=[order.pk]), HTTP_HX_REQUEST="true"))
    assert "editing" in opened and f'name="r{order.pk}-time" value="10:00"' in opened

    prefix = f"r{order.pk}-"
    response = client.post(
        reverse("order_reschedule", args=[order.pk]),
        {prefix + "day": DAY.isoformat(), prefix + "time": "15:45", prefix + "station": order.station_id},
        HTTP_HX_REQUEST="true",
    )
    assert response["HX-Trigger"] == "orders-changed" and "15:45" in body(response)
    order.refresh_from_db()
    assert order.scheduled_start == at(15, 45)


def test_rescheduling_onto_a_busy_slot_needs_the_tick_too(client, staff, book, make_patient):
    book(start=at(15, 45), patient=make_patient("Rex"))
    order = book(start=at(10))
    client = logged_in(client, staff["front desk"])
    prefix = f"r{order.pk}-"
    data = {prefix + "day": DAY.isoformat(), prefix + "time": "15:50", prefix + "station": order.station_id}
    response = client.post(reverse("order_reschedule", args=[order.pk]), data, HTTP_HX_REQUEST="true")
    assert "Busy then" in body(response) and "Rex" in body(response)
    order.refresh_from_db()
    assert order.scheduled_start == at(10)
    client.post(
        reverse("order_reschedule", args=[order.pk]),
        {**data, prefix + "book_anyway": "on"},
        HTTP_HX_REQUEST="true",
    )
    order.refresh_from_db()
    assert order.scheduled_start == at(15, 50)


def test_reschedule_from_the_order_page_shows_field_errors(client, staff, book):
    order = book(start=at(10))
    client = logged_in(client, staff["front desk"])
    response = client.post(
        reverse("order_reschedule", args=[order.pk]),
        {"day": DAY.isoformat(), "time": "noon", "station": order.station_id},
    )
    assert response.status_code == 200 and "Enter a time like 09:30" in field_errors(response, "time")
    response = client.post(
        reverse("order_reschedule", args=[order.pk]),
        {"day": DAY.isoformat(), "time": "16:00", "station": order.station_id},
    )
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.scheduled_start == at(16)


# ---------------------------------------------------------------- the order page and the patient page


def test_the_order_page_shows_everything_about_the_order(client, staff, book, actor, storage_root):
    order = book(
        reason="Coughing",
        referring_vet="Dr Okafor",
        performing_vet="Sam",
        weight_kg=Decimal("31.4"),
        priority="HIGH",
    )
    orders.order_arrive(actor=actor, order=order)
    study = make_study(patient=order.patient, order=order, description="Thorax images")
    page = body(logged_in(client, staff["veterinarian"]).get(reverse("order_detail", args=[order.pk])))
    for said in (
        order.accession_number,
        order.requested_procedure_id,
        order.scheduled_step_id,
        order.study_instance_uid,
        "Biscuit",
        "Hartley, Jane",
        "Labrador retriever",
        "DRROOM",
        "Coughing",
        "Dr Okafor",
        "Sam",
        "31.4 kg",
        "Urgent",
        "DX-THX2",
        "Scheduled → ",
        reverse("study_detail", args=[study.pk]),
        "Thorax images",
        "Performed procedure steps",
    ):
        assert said in page, said
    assert "Mark in progress" in page and "Back to scheduled" in page and "Mark arrived" not in page


def test_the_front_desk_does_not_see_the_procedure_steps(client, staff, book):
    page = body(logged_in(client, staff["front desk"]).get(reverse("order_detail", args=[book().pk])))
    assert "Performed procedure steps" not in page and "Mark arrived" in page


def test_the_patient_page_lists_the_animals_orders_and_offers_scheduling(client, staff, biscuit, book):
    order = book()
    page = body(logged_in(client, staff["front desk"]).get(reverse("patient_detail", args=[biscuit.pk])))
    assert "Imaging orders" in page and order.accession_number in page and "Scheduled" in page
    assert reverse("order_create") + f"?patient={biscuit.pk}" in page
    page = body(logged_in(client, staff["radiologist"]).get(reverse("patient_detail", args=[biscuit.pk])))
    assert order.accession_number in page and "Schedule imaging" not in page


# ---------------------------------------------------------------- permissions


def test_every_scheduling_page_sends_a_logged_out_visitor_to_log_in(client, biscuit, book):
    order = book()
    for url in (
        new_order_url(biscuit),
        reverse("order_board"),
        reverse("order_detail", args=[order.pk]),
        reverse("order_slots"),
        reverse("order_station_options"),
        reverse("order_card", args=[order.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url
    response = client.post(reverse("order_status", args=[order.pk]), {"status": "arrived"})
    assert response.status_code == 302
    assert ImagingOrder.objects.get().status == Status.SCHEDULED


def test_a_radiologist_may_look_but_not_schedule_or_change(client, staff, biscuit, book):
    order = book()
    client = logged_in(client, staff["radiologist"])
    assert client.get(reverse("order_board")).status_code == 200
    assert client.get(reverse("order_detail", args=[order.pk])).status_code == 200
    assert client.get(new_order_url(biscuit)).status_code == 403
    assert client.post(new_order_url(biscuit), form_data()).status_code == 403
    assert client.post(reverse("order_status", args=[order.pk]), {"status": "cancelled"}).status_code == 403
    assert client.post(reverse("order_reschedule", args=[order.pk]), {"time": "12:00"}).status_code == 403
    assert ImagingOrder.objects.count() == 1 and ImagingOrder.objects.get().status == Status.SCHEDULED
    page = body(client.get(reverse("order_board"), {"day": DAY.isoformat()}))
    assert order.accession_number in page and "Arrived</button>" not in page and "+ 08:00" not in page


def test_someone_without_the_order_permissions_is_refused(client, book):
    order = book()
    client = logged_in(client, User.objects.create_user("visitor"))
    for url in (reverse("order_board"), reverse("order_detail", args=[order.pk])):
        assert client.get(url).status_code == 403, url
    assert "Day board" not in body(client.get(reverse("home")))


# ---------------------------------------------------------------- editing an order's details


def edit_data(order, **fields):
    """What the edit form posts when nothing is touched: the order's values as the page shows them."""
    data = {"priority": order.priority, "reason": order.reason, "referring_vet": order.referring_vet,
            "performing_vet": order.performing_vet,
            "weight_kg": "" if order.weight_kg is None else str(order.weight_kg)}  # fmt: skip
    if order.teleradiology:
        data["teleradiology"] = "on"
    data.update(fields)
    return {name: value for name, value in data.items() if value is not None}


def test_the_order_page_offers_edit_and_the_form_marks_it_for_teleradiology(client, staff, book):
    order = book(reason="Cough\nfor weeks", referring_vet="Dr Okafor", weight_kg=Decimal("31.4"))
    client = logged_in(client, staff["front desk"])
    page = body(client.get(reverse("order_detail", args=[order.pk])))
    assert f'href="{reverse("order_edit", args=[order.pk])}"' in page
    form = body(client.get(reverse("order_edit", args=[order.pk])))
    assert 'value="31.400"' in form and "Dr Okafor" in form
    response = client.post(reverse("order_edit", args=[order.pk]),
                           edit_data(order, teleradiology="on", priority="STAT", reason="Cough\r\nfor weeks"))  # fmt: skip
    assert response.status_code == 302 and response["Location"] == reverse("order_detail", args=[order.pk])
    stored = ImagingOrder.objects.get(pk=order.pk)
    assert (stored.teleradiology, stored.priority, stored.reason) == (True, "STAT", "Cough\nfor weeks")
    entry = AuditEntry.objects.get(object_id=str(order.pk), action="update")
    assert set(entry.changes) == {"teleradiology", "priority"} and entry.user == staff["front desk"]
    assert "send for teleradiology" in body(client.get(reverse("order_detail", args=[order.pk])))


def test_the_edit_form_saved_unchanged_changes_and_records_nothing(client, staff, book):
    order = book(reason="Cough\nfor weeks", referring_vet="Dr Okafor", performing_vet="Dr Lee", priority="HIGH",
                 weight_kg=Decimal("31.4"), teleradiology=True)  # fmt: skip
    order = ImagingOrder.objects.get(pk=order.pk)
    count, weights = AuditEntry.objects.count(), order.patient.weights.count()
    client = logged_in(client, staff["front desk"])
    # As a browser sends it: the text area's line breaks as CRLF, the weight as the page shows it.
    response = client.post(reverse("order_edit", args=[order.pk]),
                           edit_data(order, reason="Cough\r\nfor weeks", weight_kg="31.400"))  # fmt: skip
    assert response.status_code == 302
    assert ImagingOrder.objects.get(pk=order.pk).updated == order.updated
    assert (AuditEntry.objects.count(), order.patient.weights.count()) == (count, weights)


def test_the_edit_form_names_a_bad_field_and_saves_nothing(client, staff, book):
    order = book()
    client = logged_in(client, staff["front desk"])
    response = client.post(
        reverse("order_edit", args=[order.pk]), edit_data(order, weight_kg="-2", priority="SOON")
    )
    assert response.status_code == 200
    assert "greater than or equal to 0.001" in field_errors(response, "weight_kg")
    assert "SOON is not one of the available choices" in field_errors(response, "priority")
    assert ImagingOrder.objects.get(pk=order.pk).updated == order.updated


def test_a_closed_order_offers_no_edit_and_its_form_says_why(client, staff, book, actor):
    order = book()
    orders.order_status_set(actor=actor, order=order, status=Status.COMPLETED)
    client = logged_in(client, staff["front desk"])
    assert reverse("order_edit", args=[order.pk]) not in body(
        client.get(reverse("order_detail", args=[order.pk]))
    )
    response = client.post(
        reverse("order_edit", args=[order.pk]), edit_data(order, teleradiology="on"), follow=True
    )
    assert "is completed; its details can no longer be changed" in body(response)
    assert ImagingOrder.objects.get(pk=order.pk).teleradiology is False


def test_a_radiologist_may_not_edit_an_order(client, staff, book):
    order = book()
    client = logged_in(client, staff["radiologist"])
    assert reverse("order_edit", args=[order.pk]) not in body(
        client.get(reverse("order_detail", args=[order.pk]))
    )
    assert client.get(reverse("order_edit", args=[order.pk])).status_code == 403
    response = client.post(reverse("order_edit", args=[order.pk]), edit_data(order, teleradiology="on"))
    assert response.status_code == 403 and ImagingOrder.objects.get(pk=order.pk).teleradiology is False


def test_the_nav_links_the_day_board(client, staff):
    assert reverse("order_board") in body(logged_in(client, staff["front desk"]).get(reverse("home")))
