"""The report beside the images: the viewer's side panel (templates/imaging/viewer/
_report_panel.html, viewer/src/report.js) is the study page's report form, with the templates
that fit the study. It posts to the same view (imaging/reports/views.py), which answers it with
JSON and the panel drawn again."""

from django.http import HttpRequest, JsonResponse
from django.template.loader import render_to_string

from imaging.models import Report, Study
from imaging.reports.forms import ReportForm, report_stamp
from imaging.reports.report_templates import report_templates_for

PANEL_BODY = "imaging/viewer/_report_panel_body.html"


def panel_wanted(request: HttpRequest) -> bool:
    """The panel's fetch asks for JSON; the study page's form (and the panel without JS) does not."""
    return "application/json" in request.headers.get("Accept", "")


def panel_form(report: Report | None) -> ReportForm:
    form = ReportForm.for_report(report)
    form.auto_id = "report-%s"  # its own ids, as the view binds it: the panel's fields are not the page's
    return form


def report_panel_context(request: HttpRequest, study: Study, *, form: ReportForm | None = None) -> dict:
    report = Report.objects.filter(study=study).first()
    context: dict = {"study": study, "report": report}
    if request.user.has_perm("imaging.change_report"):
        context["report_form"] = form or panel_form(report)
        if report is None or not report.is_final:
            choice = report_templates_for(study=study)
            context["templates_suggested"], context["templates_other"] = choice.suggested, choice.others
            context["template_texts"] = {
                str(t.pk): {"findings": t.findings, "conclusion": t.conclusion}
                for t in [*choice.suggested, *choice.others]
            }
    return context


def panel_answer(
    request: HttpRequest,
    study: Study,
    *,
    form: ReportForm | None = None,
    message: str = "",
    status: int = 200,
) -> JsonResponse:
    """The panel's answer: what happened, the errors by field (``__all__`` for the form's own), the
    report as it now is, and the panel drawn again (the form bound to the vet's text on an error:
    nothing typed is lost)."""
    context = report_panel_context(request, study, form=form if status >= 400 else None)
    report = context["report"]
    errors = {field: [str(e) for e in problems] for field, problems in form.errors.items()} if form else {}
    return JsonResponse({
        "message": message,
        "errors": errors,
        "report": None if report is None else {
            "status": report.status, "version": report.version, "loaded": report_stamp(report),
            "signed_by_name": report.signed_by_name,
        },
        "panel": render_to_string(PANEL_BODY, {**context, "message": message}, request=request),
    }, status=status)  # fmt: skip
