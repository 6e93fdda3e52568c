"""Every date and time input of every form writes its value the one way a browser reads it.

<input type="date"> takes only yyyy-mm-dd, type="datetime-local" only yyyy-mm-ddThh:mm[:ss],
type="time" only hh:mm[:ss] (HTML, "dates and times" microsyntaxes); anything else shows an
empty field, and saving the form erases the value. Django writes the locale's format (en-gb:
02/04/2019) unless told otherwise."""

import importlib
import re
from datetime import date, datetime, time

import pytest
from django import forms
from django.utils import translation
from django.utils.timezone import make_aware

from patients.forms import PatientForm, VisitForm
from patients.models import Patient, Visit

HTML = {
    "date": (date(2019, 4, 2), r"\d{4}-\d\d-\d\d"),
    "datetime-local": (
        make_aware(datetime(2019, 4, 2, 10, 30, 45)),
        r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?",
    ),
    "time": (time(10, 30), r"\d\d:\d\d(:\d\d(\.\d+)?)?"),
}
MODULES = ["patients.forms", "imaging.reconcile.forms", "imaging.reports.forms", "imaging.orders.forms",
           "vetclinic.forms", "integrations.admin", "imaging.admin", "patients.admin"]  # fmt: skip


def project_forms():
    for module in MODULES:
        importlib.import_module(module)
    found, todo = set(), [forms.BaseForm]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.split(".")[0] in ("patients", "imaging", "integrations", "vetclinic"):
                found.add(sub)
    return sorted(found, key=lambda f: f"{f.__module__}.{f.__qualname__}")


def html_inputs():
    for form in project_forms():
        for name, field in form.base_fields.items():
            kind = field.widget.attrs.get("type") or getattr(field.widget, "input_type", None)
            if kind in HTML:
                yield pytest.param(form, name, field, kind, id=f"{form.__name__}.{name}")


def test_the_forms_with_dates_are_all_found():
    found = {param.id for param in html_inputs()}
    assert {"PatientForm.birth_date", "PatientForm.deceased_on", "VisitForm.starts_at", "OrderForm.day",
            "RescheduleForm.day"} <= found  # fmt: skip


@pytest.mark.parametrize("form, name, field, kind", list(html_inputs()))
def test_every_date_and_time_input_writes_its_value_as_html_reads_it(form, name, field, kind):
    value, pattern = HTML[kind]
    with translation.override("en-gb"):
        written = field.widget.format_value(field.prepare_value(value))
    assert re.fullmatch(pattern, written), (
        f"{form.__name__}.{name} writes {written!r} into <input type={kind}>"
    )


@pytest.mark.django_db
def test_an_animal_form_shows_the_birth_and_death_dates_it_has(make_patient):
    biscuit = make_patient(birth_date=date(2019, 4, 2), deceased=True, deceased_on=date(2025, 1, 31))
    html = str(PatientForm(instance=Patient.objects.get(pk=biscuit.pk)))
    assert 'type="date" name="birth_date" value="2019-04-02"' in html
    assert 'type="date" name="deceased_on" value="2025-01-31"' in html


@pytest.mark.django_db
def test_a_visit_saved_unchanged_keeps_its_time_to_the_second(make_patient, settings):
    settings.TIME_ZONE = "Europe/London"
    visit = Visit.objects.create(
        patient=make_patient(), starts_at=make_aware(datetime(2026, 6, 1, 10, 30, 45, 123456))
    )
    html = str(VisitForm(instance=visit)["starts_at"])
    assert 'value="2026-06-01T10:30:45"' in html  # the clinic's time, with its seconds
    sent = dict(re.findall(r'name="([\w-]+)" value="([^"]*)"', html))  # with its hidden initial value
    form = VisitForm({**sent, "reason": "", "status": "booked"}, instance=visit)
    assert form.is_valid(), form.errors
    assert form.changed_data == []  # so the view gives the service nothing to change


def text_areas():
    for form in project_forms():
        for name, field in form.base_fields.items():
            if isinstance(field.widget, forms.Textarea):
                yield pytest.param(form, name, field, id=f"{form.__name__}.{name}")


def test_the_forms_with_text_areas_are_all_found():
    found = {param.id for param in text_areas()}
    assert {"OwnerForm.notes", "PatientForm.notes", "OrderForm.reason", "ReportForm.findings"} <= found


@pytest.mark.parametrize("form, name, field", list(text_areas()))
def test_every_text_area_keeps_line_breaks_as_stored(form, name, field):
    """Browsers send a textarea's line breaks as CRLF; text saved back unchanged stays as it was."""
    assert field.clean("Coughing.\r\nWorse at night.") == "Coughing.\nWorse at night."
    assert not field.has_changed("Coughing.\nWorse at night.", "Coughing.\r\nWorse at night.")


@pytest.mark.django_db
def test_a_new_visit_is_offered_at_the_clinic_clocks_minute(settings):
    settings.CLOCK_NOW = "2026-11-23T10:31:45"
    assert 'value="2026-11-23T10:31"' in str(VisitForm()["starts_at"])
    assert not Visit.objects.exists()
