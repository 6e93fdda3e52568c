"""What every form of the UI shares: the renderer, the date and time inputs, and text areas.

A browser's <input type="date"> takes and sends only a valid date string, yyyy-mm-dd (HTML,
"dates and times" microsyntaxes), and <input type="datetime-local"> only yyyy-mm-ddThh:mm[:ss].
Django writes a DateInput's value in the locale's first input format (en-gb: 02/04/2019),
which the browser drops: the field shows empty and saving erases the date. So every such
input of every form comes from here, with the value written the way HTML reads it.
"""

from datetime import datetime

from django import forms
from django.forms.renderers import TemplatesSetting
from django.utils import timezone


class FormRenderer(TemplatesSetting):
    """Every field rendered by templates/forms/field.html: label, widget, help, errors."""

    field_template_name = "forms/field.html"


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%d")


class DateTimeInput(forms.DateTimeInput):
    """yyyy-mm-ddThh:mm, with the seconds only when the value has some (a time from HL7 or a
    modality keeps them; the field then shows and sends them back)."""

    input_type = "datetime-local"

    def format_value(self, value):
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%dT%H:%M:%S" if value.second else "%Y-%m-%dT%H:%M")
        return super().format_value(value)


class DateField(forms.DateField):
    widget = DateInput


class DateTimeField(forms.DateTimeField):
    """A moment as the person sees it: to the second in the clinic's time. A value saved back
    unchanged is unchanged, although the input cannot show its microseconds."""

    widget = DateTimeInput

    def has_changed(self, initial, data):
        try:
            data = self.to_python(data)
        except forms.ValidationError:
            return True
        shown = timezone.localtime(initial).replace(microsecond=0) if initial else None
        return shown != data


class TextField(forms.CharField):
    """Text from a <textarea>: browsers send its line breaks as CRLF (HTML, "form submission"),
    which would make text saved back unchanged differ from what is stored. Kept as LF."""

    def to_python(self, value):
        value = super().to_python(value)
        return value.replace("\r\n", "\n").replace("\r", "\n") if value else value


def formfield(db_field, **kwargs):
    """ModelForms' Meta.formfield_callback: the fields above for the model's dates and text."""
    from django.db import models

    if isinstance(db_field, models.TextField) and not db_field.choices:
        kwargs.setdefault("form_class", TextField)
    elif isinstance(db_field, models.DateTimeField):
        kwargs.setdefault("form_class", DateTimeField)
    elif isinstance(db_field, models.DateField):
        kwargs.setdefault("form_class", DateField)
    return db_field.formfield(**kwargs)
