"""The report form's POST: keep a draft, sign, or amend; a thin adapter over
imaging/reports/services.py that draws the study page again on an error, or, for the viewer's
report panel (which asks for JSON), answers with the errors by field and the panel drawn again."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from imaging.models import Report
from imaging.reports import services as reports
from imaging.reports.forms import ReportForm, report_stamp
from imaging.reports.panel import panel_answer, panel_wanted
from imaging.studies.views import study_or_404, study_page, study_title
from vetclinic.audit.services import Actor


def _actor(request):
    return Actor.for_user(request.user)


@login_required
@permission_required("imaging.change_report", raise_exception=True)
@require_POST
def study_report(request, pk):
    """Keep a draft of the study's report, sign it, or amend the signed one. On an error the
    page comes back with the vet's text in the form: nothing typed is lost."""
    study = study_or_404(pk)
    panel = panel_wanted(request)
    form = ReportForm(request.POST, auto_id="report-%s" if panel else "id_%s")

    def again(status):
        if panel:
            return panel_answer(request, study, form=form, status=status)
        return study_page(request, study, report_form=form, status=status)

    if not form.is_valid():
        return again(400)
    data = form.cleaned_data
    current = Report.objects.filter(study=study).first()
    if data["loaded"] != report_stamp(current):
        form.add_error(
            None,
            "Someone else changed or signed this report since you opened the page. "
            "Your text is below; copy what you need, then reload.",
        )
        return again(409)
    text = {"findings": data["findings"], "conclusion": data["conclusion"]}
    try:
        if data["action"] == ReportForm.FINALIZE:
            reports.report_finalize(actor=_actor(request), study=study, **text)
            done = f"Report signed; {study_title(study)} is reported."
        elif data["action"] == ReportForm.AMEND:
            reports.report_amend(actor=_actor(request), study=study, reason=data["reason"], **text)
            done = "Report amended; the practice system is sent the correction."
        else:
            reports.report_save(actor=_actor(request), study=study, **text)
            done = "Draft saved."
    except ValidationError as error:
        for field, problems in error.message_dict.items():
            form.add_error(field if field in form.fields else None, problems)
        return again(400)
    if panel:
        return panel_answer(request, study, message=done)
    messages.success(request, done)
    return redirect(reverse("study_detail", args=[study.pk]) + "#report")
