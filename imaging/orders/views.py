"""Scheduling pages: the order form, the day board and the order page. Thin adapters that
validate a form and call imaging/orders/services.py; htmx swaps in station lists, free times
(slots.py), the board and single order cards."""

from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timezone import localtime
from django.views.decorators.http import require_GET, require_POST

from imaging.models import ImagingOrder, Modality, Procedure
from imaging.orders import selectors
from imaging.orders import services as orders
from imaging.orders.forms import (
    BookAnywayForm,
    ClockField,
    OrderEditForm,
    OrderForm,
    RescheduleForm,
    StatusForm,
    duration_help,
    station_choices,
    vet_names,
)
from imaging.orders.slots import free_ahead, free_windows, next_open_day, open_ahead, slots_context
from imaging.templatetags.order_tags import RESCHEDULABLE
from patients.models import Patient
from patients.selectors import patient_resolve, patient_search
from vetclinic import clock
from vetclinic.audit.selectors import audit_history
from vetclinic.audit.services import Actor

Status = ImagingOrder.Status
# The board's columns; cancelled and discontinued orders follow below them, muted.
COLUMNS = [
    ("Scheduled", [Status.SCHEDULED]),
    ("Arrived", [Status.ARRIVED]),
    ("In progress", [Status.IN_PROGRESS]),
    ("Done", [Status.COMPLETED, Status.REPORTED]),
]
STOPPED = [Status.CANCELLED, Status.DISCONTINUED]
# Where a service's error about the start time belongs on the forms.
FIELD_ALIASES = {"scheduled_start": "time"}


def _actor(request):
    return Actor.for_user(request.user)


def _errors_onto(form, error):
    """A service's ValidationError on the form's own fields (or above them)."""
    for field, messages_ in (
        error.message_dict.items() if hasattr(error, "error_dict") else [(None, error.messages)]
    ):
        field = FIELD_ALIASES.get(field, field)
        form.add_error(field if field in form.fields else None, messages_)


def _next(request, fallback):
    """Back to the page the action came from (the board with its day and station), if ours."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback


def _day(value):
    try:
        return datetime.strptime(value or "", "%Y-%m-%d").date()
    except ValueError:
        return None


def _pk(value):
    value = str(value or "")
    return int(value) if value.isdigit() else None


# ---------------------------------------------------------------- the order form


@login_required
@permission_required("imaging.add_imagingorder", raise_exception=True)
def order_create(request):
    """Schedule imaging for ?patient=<pk>; without one, pick the animal first (from an empty
    slot on the board: ?station=AE&day=YYYY-MM-DD&time=HH:MM come along)."""
    slot = {key: request.GET[key] for key in ("station", "day", "time") if request.GET.get(key)}
    if not _pk(request.GET.get("patient")):
        return _patient_pick(request, slot)
    patient = patient_resolve(
        get_object_or_404(Patient.objects.select_related("species"), pk=request.GET["patient"])
    )
    initial = {"day": _day(slot.get("day")) or next_open_day(), "time": slot.get("time", "")}
    station = Modality.objects.filter(ae_title=slot.get("station"), active=True).first()
    if station:
        initial["station"] = station.pk
    form = OrderForm(request.POST or None, patient=patient, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            order = orders.order_create(actor=_actor(request), patient=patient, **form.service_fields())
        except ValidationError as error:
            _errors_onto(form, error)
        else:
            messages.success(
                request, f"Scheduled {order.procedure.name} for {patient.name}: {order.accession_number}."
            )
            return redirect("order_detail", pk=order.pk)
    context = {"form": form, "patient": patient, "vets": vet_names(), "owner": patient.primary_owner}
    procedure = form.chosen_procedure()
    minutes = _pk(_value(form, "duration_minutes")) or (procedure.duration_minutes if procedure else None)
    context.update(_slots_for_form(form, minutes=minutes))
    return render(request, "imaging/orders/order_form.html", context)


def _patient_pick(request, slot):
    query = request.GET.get("q", "").strip()
    patients = patient_search(query=query, limit=15) if query else None
    context = {"patients": patients, "query": query, "slot": slot, "slot_query": urlencode(slot)}
    if slot.get("station"):
        context["station"] = Modality.objects.filter(ae_title=slot["station"]).first()
        context["slot_day"] = _day(slot.get("day"))
    if request.htmx and request.htmx.target == "pick-results":
        return render(request, "imaging/orders/_pick_results.html", context)
    return render(request, "imaging/orders/order_pick.html", context)


def _slots_for_form(form, *, minutes=None, exclude=None):
    """The free-times block as the form stands (htmx refreshes it as the fields change)."""
    station, day, clock = (_value(form, name) for name in ("station", "day", "time"))
    return slots_context(
        station=Modality.objects.filter(pk=_pk(getattr(station, "pk", station))).first(),
        day=day if isinstance(day, date) else _day(day),
        clock=clock if isinstance(clock, time) else _clock(clock),
        minutes=minutes, book_anyway=form["book_anyway"], past_ok=form["past_ok"], exclude=exclude,
    )  # fmt: skip


def _value(form, name):
    """A field's value as typed (bound form) or as offered (initial)."""
    return form.data.get(form.add_prefix(name)) if form.is_bound else form.initial.get(name)


def _clock(value):
    try:
        return ClockField().clean(value) if value else None
    except ValidationError:
        return None


@login_required
@permission_required("imaging.add_imagingorder", raise_exception=True)
@require_GET
def order_station_options(request):
    """The station <option>s for a procedure (htmx swaps them in when the procedure changes),
    the duration's help out of band, and an event that refreshes the free times."""
    procedure = Procedure.objects.filter(pk=_pk(request.GET.get("procedure")), active=True).first()
    choices = station_choices(procedure.modality_type if procedure else None)
    current = request.GET.get("station", "")
    offered = {str(value) for value, _ in choices}
    context = {
        "choices": choices,
        "selected": current if current in offered else str(choices[0][0]),
        "duration_help": duration_help(procedure),
    }
    response = render(request, "imaging/orders/_station_options.html", context)
    response["HX-Trigger-After-Settle"] = "stations-changed"
    return response


@login_required
@permission_required("imaging.view_imagingorder", raise_exception=True)
@require_GET
def order_slots(request):
    """The free-times block of the order and reschedule forms (htmx, as the fields change)."""
    get = request.GET
    # The order being rescheduled does not clash with itself, and lasts as long as it did.
    exclude = ImagingOrder.objects.filter(pk=_pk(get.get("order"))).first()
    procedure = Procedure.objects.filter(pk=_pk(get.get("procedure"))).first() or exclude
    ticks = BookAnywayForm(get)
    context = slots_context(
        station=Modality.objects.filter(pk=_pk(get.get("station"))).first(), day=_day(get.get("day")),
        clock=_clock(get.get("time")),
        minutes=_pk(get.get("duration_minutes")) or (procedure.duration_minutes if procedure else None),
        book_anyway=ticks["book_anyway"], past_ok=ticks["past_ok"], exclude=exclude,
    )  # fmt: skip
    return render(request, "imaging/orders/_slots.html", context)


# ---------------------------------------------------------------- the day board


@login_required
@permission_required("imaging.view_imagingorder", raise_exception=True)
@require_GET
def order_board(request):
    """One day, one station or the whole clinic: ?day=YYYY-MM-DD&station=AE. The page polls
    itself (htmx, target "board") for just the board."""
    day = _day(request.GET.get("day")) or clock.today()  # anything else means today
    ae_title = request.GET.get("station", "")
    station = get_object_or_404(Modality, ae_title=ae_title) if ae_title else None
    day_orders = list(selectors.day_orders(day=day, station=station))
    context = {
        "day": day,
        "station": station,
        "today": clock.today(),
        "columns": [(title, [o for o in day_orders if o.status in statuses]) for title, statuses in COLUMNS],
        "stopped": [o for o in day_orders if o.status in STOPPED],
        "count": len(day_orders),
        "refreshed": clock.now(),
        "clinic_hours": f"{settings.CLINIC_OPENS}–{settings.CLINIC_CLOSES}",
        "here": request.get_full_path(),
    }
    if request.user.has_perm("imaging.add_imagingorder") and day >= clock.today():
        if open_ahead(day):
            shown = [station] if station else list(selectors.stations())
            minutes = settings.SLOT_MINUTES
            context["free"] = [(s, free_windows(free_ahead(s, day, minutes), minutes)) for s in shown]
        else:  # after closing time nothing is free, and nothing is "fully booked" either
            context["closed"] = True
            context["next_open"] = next_open_day()
    if request.htmx and request.htmx.target == "board":
        return render(request, "imaging/orders/_board.html", context)
    context.update({
        "stations": selectors.stations(),
        "previous": day - timedelta(days=1),
        "next": day + timedelta(days=1),
    })  # fmt: skip
    return render(request, "imaging/orders/board.html", context)


# ---------------------------------------------------------------- the order page and actions


def _order(pk):
    try:
        return selectors.order_detail(pk=pk)
    except ImagingOrder.DoesNotExist:
        raise Http404("No such order.") from None


@login_required
@permission_required("imaging.view_imagingorder", raise_exception=True)
@require_GET
def order_detail(request, pk):
    order = _order(pk)
    return _detail(request, order, RescheduleForm(order=order))


def _detail(request, order, reschedule_form):
    context = {
        "order": order,
        "owner": order.patient.primary_owner,
        "reschedule_form": reschedule_form,
        "can_reschedule": order.status in RESCHEDULABLE,
    }
    if context["can_reschedule"] and request.user.has_perm("imaging.change_imagingorder"):
        context.update(_slots_for_form(reschedule_form, minutes=order.duration_minutes, exclude=order))
    if request.user.has_perm("imaging.view_performedprocedurestep"):
        context["steps"] = order.performed_steps.all()
    if request.user.has_perm("audit.view_auditentry"):
        context["history"] = audit_history(instance=order)
    return render(request, "imaging/orders/order_detail.html", context)


@login_required
@permission_required("imaging.view_imagingorder", raise_exception=True)
@require_GET
def order_card(request, pk):
    """One order's card on the board (htmx: closing its reschedule form)."""
    return render(request, "imaging/orders/_card.html", {"order": _order(pk), "here": _next(request, "")})


@login_required
@permission_required("imaging.change_imagingorder", raise_exception=True)
@require_POST
def order_status(request, pk):
    """Arrive, cancel or any other move the order's status allows, from the board or its page."""
    order = get_object_or_404(ImagingOrder, pk=pk)
    form = StatusForm(request.POST)
    error = None
    if not form.is_valid():
        error = " ".join(e for errors in form.errors.values() for e in errors)
    else:
        status, note = form.cleaned_data["status"], form.cleaned_data["note"]
        try:
            if status == Status.ARRIVED:
                orders.order_arrive(actor=_actor(request), order=order)
            elif status == Status.CANCELLED:
                orders.order_cancel(actor=_actor(request), order=order, reason=note)
            else:
                orders.order_status_set(actor=_actor(request), order=order, status=status, note=note)
        except ValidationError as problem:
            error = " ".join(problem.messages)
    order = _order(pk)
    if request.htmx:
        return _card(request, order, error=error)
    if error:
        messages.error(request, f"{error} Nothing was changed.")
    else:
        messages.success(
            request,
            f"{order.accession_number} ({order.patient.name}) is {order.get_status_display().lower()}.",
        )
    return redirect(_next(request, reverse("order_detail", args=[order.pk])))


def _card(request, order, *, error=None, form=None):
    """The order's card alone; when it changed, the board is told to refresh (the card may
    belong in another column now)."""
    context = {"order": order, "error": error, "form": form, "here": _next(request, "")}
    response = render(request, "imaging/orders/_card.html", context)
    if error is None and form is None:
        response["HX-Trigger"] = "orders-changed"
    return response


@login_required
@permission_required("imaging.change_imagingorder", raise_exception=True)
def order_reschedule(request, pk):
    """GET (htmx): the board card with its reschedule form open. POST: move the order."""
    order = _order(pk)
    on_board = bool(request.htmx)
    form = RescheduleForm(request.POST or None, order=order, prefix=f"r{order.pk}" if on_board else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            orders.order_reschedule(
                actor=_actor(request),
                order=order,
                scheduled_start=data["scheduled_start"],
                station=data["station"],
                past_ok=data["past_ok"],
            )
        except ValidationError as error:
            _errors_onto(form, error)
        else:
            order = _order(pk)
            if on_board:
                return _card(request, order)
            messages.success(request, f"{order.accession_number} moved to {_when(order)}.")
            return redirect(_next(request, reverse("order_detail", args=[order.pk])))
    if on_board:
        return _card(request, order, form=form)
    if request.method == "GET":
        return redirect("order_detail", pk=order.pk)
    return _detail(request, order, form)


@login_required
@permission_required("imaging.change_imagingorder", raise_exception=True)
def order_edit(request, pk):
    """The order's details: priority, reason, vets, weight on the day, the teleradiology mark."""
    order = _order(pk)
    if not order.details_editable():
        messages.error(
            request, f"{order.accession_number} is {order.get_status_display().lower()}; "
                     "its details can no longer be changed."
        )  # fmt: skip
        return redirect("order_detail", pk=order.pk)
    form = OrderEditForm(request.POST or None, instance=order)
    if request.method == "POST" and form.is_valid():
        try:
            orders.order_update(actor=_actor(request), order=order, fields=form.service_fields())
        except ValidationError as error:
            _errors_onto(form, error)
        else:
            messages.success(request, f"Saved {order.accession_number} ({order.patient.name}).")
            return redirect("order_detail", pk=order.pk)
    context = {"form": form, "order": order, "vets": vet_names()}
    return render(request, "imaging/orders/order_edit.html", context)


def _when(order):
    where = order.station.ae_title if order.station else "any station"
    return f"{date_format(localtime(order.scheduled_start), 'D j M Y H:i')} on {where}"
