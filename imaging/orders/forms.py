"""Scheduling forms. They check what the front desk can get wrong before a service runs, each
error on its own field; the services (imaging/orders/services.py) check again, for every channel."""

import re
from datetime import datetime, time
from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils.timezone import localtime, make_aware

from imaging.models import ImagingOrder
from imaging.orders.selectors import procedures_for, station_conflicts, stations
from vetclinic.forms import DateField, formfield

# DICOM Modality (0008,0060) codes as the desk knows them; the procedure list is grouped by them.
MODALITY_NAMES = {
    "DX": "Radiography", "CR": "Radiography (CR)", "IO": "Dental radiography", "US": "Ultrasound",
    "CT": "CT", "MR": "MRI", "ES": "Endoscopy", "XA": "Fluoroscopy", "NM": "Scintigraphy",
}  # fmt: skip
CLOCK = re.compile(r"^(\d{1,2})(?:[:.h ]?(\d{2}))?$")


class ClockField(forms.CharField):
    """A time of day as people type it at a desk: 9, 0930, 9:30, 09.30, 9h30."""

    default_error_messages = {"invalid": "Enter a time like 09:30."}

    def to_python(self, value):
        value = super().to_python(value).strip().lower()
        if not value:
            return None
        match = CLOCK.match(value)
        hour, minute = (int(match[1]), int(match[2] or 0)) if match else (99, 99)
        if hour > 23 or minute > 59:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return time(hour, minute)

    def prepare_value(self, value):
        return value.strftime("%H:%M") if isinstance(value, time) else value


def clock_widget():
    # Free slots come as a <datalist> (imaging/orders/_slots.html); typing filters them.
    return forms.TextInput(
        attrs={"list": "free-slots", "autocomplete": "off", "placeholder": "HH:MM", "inputmode": "numeric",
               "class": "clock"}
    )  # fmt: skip


def book_anyway_field():
    return forms.BooleanField(
        required=False, label="Book anyway",
        help_text="The station is busy then: tick to double-book it knowingly.",
    )  # fmt: skip


def past_ok_field():
    return forms.BooleanField(
        required=False, label="Done already",
        help_text="The time has passed: tick to record an exam that has taken place.",
    )  # fmt: skip


class BookAnywayForm(forms.Form):
    """The ticks that allow double booking a station and recording a time that has passed. The
    free-slots fragment shows them next to the clash or the passed time, inside the order form
    (and refreshes them on its own)."""

    book_anyway = book_anyway_field()
    past_ok = past_ok_field()


def _start(day, clock):
    return make_aware(datetime.combine(day, clock))


def _clash_check(form, *, station, start, minutes, exclude=None):
    """Warn about a double booking; only an explicit tick lets it through."""
    form.conflicts = station_conflicts(station=station, start=start, minutes=minutes, exclude=exclude)
    if form.conflicts and not form.cleaned_data.get("book_anyway"):
        form.add_error(
            "book_anyway",
            f"{station.ae_title} is already booked then ({len(form.conflicts)} order"
            f"{'s' if len(form.conflicts) > 1 else ''}). Choose a free time, or tick “Book anyway”.",
        )


def procedure_choices(procedures):
    """Grouped by modality, as the desk thinks of them: Radiography, Ultrasound, CT…"""
    groups = {}
    for procedure in procedures:
        label = MODALITY_NAMES.get(procedure.modality_type, procedure.modality_type)
        groups.setdefault(label, []).append((procedure.pk, procedure.name))
    return [("", "— choose a procedure —")] + list(groups.items())


def station_choices(modality_type):
    if not modality_type:
        return [("", "— choose the procedure first —")]
    found = list(stations(modality_type=modality_type))
    # One station for the procedure: it is the answer, so it comes chosen.
    return ([] if len(found) == 1 else [("", "— choose a station —")]) + [
        (s.pk, station_label(s)) for s in found
    ]


def station_label(station):
    return f"{station.ae_title} · {station.location}" if station.location else station.ae_title


def vet_names():
    users = get_user_model().objects.filter(groups__name="veterinarian", is_active=True).order_by("last_name")
    return [user.get_full_name() or user.username for user in users]


def weight_on_the_day_field(**kwargs):
    return forms.DecimalField(
        label="Weight on the day (kg)", required=False, min_value=Decimal("0.001"), max_digits=7, decimal_places=3,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}), **kwargs,
    )  # fmt: skip


class OrderForm(forms.ModelForm):
    """A new order for one animal; the procedure list is that animal's species', the station
    list narrows to the procedure's modality (htmx), and the free times show for the day."""

    day = DateField(label="Date")
    time = ClockField(label="Time", widget=clock_widget())
    duration_minutes = forms.IntegerField(
        label="Minutes", required=False, min_value=5, max_value=480,
        widget=forms.NumberInput(attrs={"step": 5}),
    )  # fmt: skip
    weight_kg = weight_on_the_day_field(max_value=Decimal("2000"))
    book_anyway = book_anyway_field()
    past_ok = past_ok_field()

    class Meta:
        model = ImagingOrder
        formfield_callback = formfield
        fields = ["procedure", "station", "duration_minutes", "priority", "teleradiology", "reason",
                  "referring_vet", "performing_vet", "weight_kg"]  # fmt: skip
        widgets = {
            "priority": forms.RadioSelect,
            "reason": forms.Textarea(attrs={"rows": 2}),
            "referring_vet": forms.TextInput(attrs={"list": "vets", "autocomplete": "off"}),
            "performing_vet": forms.TextInput(attrs={"list": "vets", "autocomplete": "off"}),
        }

    def __init__(self, *args, patient, **kwargs):
        super().__init__(*args, **kwargs)
        self.patient = patient
        self.conflicts = []
        procedure = self.fields["procedure"]
        procedure.queryset = procedures_for(species=patient.species)
        procedure.error_messages["invalid_choice"] = (
            f"Choose one of the procedures offered for a {patient.species}."
        )
        procedure.widget.choices = procedure_choices(procedure.queryset)
        procedure.widget.attrs.update(
            {"autofocus": True, "hx-get": reverse("order_station_options"), "hx-target": "#id_station",
             "hx-trigger": "change", "hx-include": "#id_station"}
        )  # fmt: skip
        station = self.fields["station"]
        station.required = True
        station.queryset = stations()  # any in use: clean() says why a wrong one does not fit
        station.help_text = ""
        chosen = self.chosen_procedure()
        # Before a procedure is chosen, a free slot's station (from the board) is offered alone.
        modality = chosen or self._chosen("station", station.queryset)
        station.widget.choices = station_choices(modality.modality_type if modality else None)
        self.fields["duration_minutes"].help_text = duration_help(chosen)
        last = patient.weights.first()
        if last:
            self.fields["weight_kg"].help_text = f"Last weighed {last.kg_display} kg on {last.measured_on}."
        self.fields["reason"].widget.attrs["placeholder"] = "Why, and what the clinician wants to know"

    def _chosen(self, name, queryset):
        value = self.data.get(self.add_prefix(name)) if self.is_bound else self.initial.get(name)
        value = str(getattr(value, "pk", value) or "")
        return queryset.filter(pk=value).first() if value.isdigit() else None

    def chosen_procedure(self):
        return self._chosen("procedure", self.fields["procedure"].queryset)

    def clean(self):
        data = super().clean()
        procedure, station = data.get("procedure"), data.get("station")
        if procedure and station and station.modality_type != procedure.modality_type:
            self.add_error(
                "station", f"{station.ae_title} is a {station.modality_type} station; {procedure.name} needs "
                           f"{procedure.modality_type}."
            )  # fmt: skip
            station = None
        if data.get("day") and data.get("time"):
            data["scheduled_start"] = _start(data["day"], data["time"])
            if procedure and station:
                minutes = data.get("duration_minutes") or procedure.duration_minutes
                _clash_check(self, station=station, start=data["scheduled_start"], minutes=minutes)
        return data

    def service_fields(self):
        """The keyword arguments of imaging.orders.services.order_create."""
        data = self.cleaned_data
        fields = {name: data[name] for name in self.Meta.fields}
        fields["scheduled_start"] = data["scheduled_start"]
        fields["past_ok"] = data["past_ok"]
        return fields


class OrderEditForm(forms.ModelForm):
    """An order's details after it is made (imaging.orders.services.order_update): what the
    order is (animal, procedure) stays, the time and station move by Reschedule."""

    # (No upper bound but the column's: a weight the PMS sent must save back unchanged.)
    weight_kg = weight_on_the_day_field()

    class Meta:
        model = ImagingOrder
        formfield_callback = formfield
        fields = ["priority", "reason", "referring_vet", "performing_vet", "weight_kg", "teleradiology"]
        widgets = OrderForm.Meta.widgets

    def service_fields(self):
        """What the person changed, and only that: a form opened before someone else's change
        (another desk, the PMS) does not put back what it showed."""
        return {name: self.cleaned_data[name] for name in self.changed_data}


def duration_help(procedure):
    if procedure is None:
        return "Empty: the procedure's usual time."
    return f"Empty: the usual {procedure.duration_minutes}."


class RescheduleForm(forms.Form):
    """Another day, time or station (of the same modality) for an order."""

    day = DateField(label="Date")
    time = ClockField(label="Time", widget=clock_widget())
    station = forms.ModelChoiceField(queryset=stations(), label="Station")
    book_anyway = book_anyway_field()
    past_ok = past_ok_field()

    def __init__(self, *args, order, **kwargs):
        start = localtime(order.scheduled_start)
        kwargs.setdefault("initial", {"day": start.date(), "time": start.time(), "station": order.station})
        super().__init__(*args, **kwargs)
        self.order = order
        self.conflicts = []
        self.fields["station"].queryset = stations(modality_type=order.modality_type)
        self.fields["station"].label_from_instance = station_label
        if self.prefix:  # several on one board: their free-slot lists are not shown, so no datalist
            self.fields["time"].widget.attrs.pop("list")

    def clean(self):
        data = super().clean()
        if data.get("day") and data.get("time") and data.get("station"):
            data["scheduled_start"] = _start(data["day"], data["time"])
            shown = localtime(self.order.scheduled_start)
            if (data["day"], data["time"]) == (shown.date(), shown.time().replace(second=0, microsecond=0)):
                # Left as shown: the start it has, to the second (HL7 and REST may give seconds).
                data["scheduled_start"] = self.order.scheduled_start
            _clash_check(
                self, station=data["station"], start=data["scheduled_start"],
                minutes=self.order.duration_minutes, exclude=self.order,
            )  # fmt: skip
        return data


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=ImagingOrder.Status.choices)
    note = forms.CharField(required=False, max_length=200, label="Why")
