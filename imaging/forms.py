"""Reconciliation forms: staff name an animal by its patient ID."""
from django import forms

from patients.models import Patient
from patients.selectors import patient_resolve
from vetclinic.forms import TextField


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


class ReportForm(forms.Form):
    """The study's report as the vet writes it: keep a draft, sign it, or amend a signed one."""

    SAVE, FINALIZE, AMEND = "save", "finalize", "amend"
    findings = TextField(
        required=False, widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "true"}),
        help_text="What the images show.",
    )  # fmt: skip
    conclusion = TextField(
        label="Conclusion", required=False, widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "true"}),
        help_text="Impression, diagnosis and advice: what the PMS shows first.",
    )  # fmt: skip
    reason = forms.CharField(
        label="Why it is amended", required=False, max_length=200,
        help_text="Only when changing a signed report; sent to the PMS with the correction.",
    )  # fmt: skip
    action = forms.ChoiceField(choices=[(SAVE, SAVE), (FINALIZE, FINALIZE), (AMEND, AMEND)], widget=forms.HiddenInput)
    # The report's last change when the page was drawn: a colleague may have signed or changed
    # it since, and a stale page must not overwrite that.
    loaded = forms.CharField(required=False, widget=forms.HiddenInput)

    @classmethod
    def for_report(cls, report):
        if report is None:
            return cls(initial={"loaded": "none"})
        return cls(initial={
            "findings": report.findings, "conclusion": report.conclusion, "loaded": report_stamp(report),
        })  # fmt: skip


def report_stamp(report):
    return "none" if report is None else report.updated.isoformat()
