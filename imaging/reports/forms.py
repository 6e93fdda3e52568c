"""The study's report as the vet writes it on the study page."""

from django import forms

from vetclinic.forms import TextField


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
    action = forms.ChoiceField(
        choices=[(SAVE, SAVE), (FINALIZE, FINALIZE), (AMEND, AMEND)], widget=forms.HiddenInput
    )
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
