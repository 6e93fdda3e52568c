"""Reconciliation forms: staff name an animal by its patient ID."""

from django import forms

from patients.models import Patient
from patients.selectors import patient_resolve


class PatientChoiceForm(forms.Form):
    patient_id = forms.CharField(label="Patient ID", max_length=64)
    species_override = forms.BooleanField(
        label="The species in the images is wrong", required=False,
        help_text="Link even though the images name another species",
    )  # fmt: skip
    # The study's patient when the page was drawn ("none": unlinked): a colleague may have linked
    # it since, and a stale page must not move it again.
    current = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_patient_id(self):
        value = self.cleaned_data["patient_id"].strip()
        patient = Patient.objects.filter(patient_id__iexact=value).select_related("species").first()
        if patient is None:
            raise forms.ValidationError(f"No patient has the ID {value}.")
        return patient_resolve(patient)  # a merged ID leads to the living record
