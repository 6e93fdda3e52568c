"""The study page and its series thumbnails. The report form on the page posts to
imaging/reports/views.py, the link and split forms to imaging/reconcile/views.py; those
views draw this page again (study_page) when they have something to say on it."""

from axes.helpers import get_client_ip_address
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from imaging.ingest import storage
from imaging.models import Report, Series, Study
from imaging.reconcile.selectors import match_suggestions
from imaging.reports.forms import ReportForm
from imaging.reports.panel import report_panel_context
from imaging.studies import reading, selectors
from imaging.studies.opened import OPEN, studies_opened_by, study_open_record, study_openings
from vetclinic import clock
from vetclinic.audit.selectors import audit_history
from vetclinic.audit.services import Actor


def study_title(study):
    return f"Study {study.description or study.study_instance_uid}" + (
        f" of {study.study_date}" if study.study_date else ""
    )


def study_or_404(pk):
    try:
        return selectors.study_detail(pk=pk)
    except Study.DoesNotExist:
        raise Http404("No such study.") from None


@login_required
@permission_required("imaging.view_study", raise_exception=True)
@require_GET
def study_detail(request, pk):
    study = study_or_404(pk)
    study_open_record(
        actor=Actor.for_user(request.user), study=study, page="study", address=client_address(request)
    )
    return study_page(request, study)


def client_address(request):
    # As the login lockout reads it (behind a proxy, LOGIN_PROXY_COUNT's X-Forwarded-For).
    return get_client_ip_address(request)


def study_page(request, study, *, report_form=None, status=200):
    report = Report.objects.filter(study=study).first()
    context = {
        "study": study,
        "series": selectors.study_series(study=study),
        "versions": selectors.study_versions(study=study),
        "report": report,
    }
    if request.user.has_perm("imaging.change_report"):
        context["report_form"] = report_form or ReportForm.for_report(report)
    if study.link == Study.Link.UNMATCHED:
        context["suggestions"] = match_suggestions(study=study)
    if request.user.has_perm("audit.view_auditentry"):
        # The openings apart, so that the changes are not crowded out by who looked.
        context["history"] = audit_history(instance=study, actions_except=[OPEN])
        context["openings"] = study_openings(study=study)
    return render(request, "imaging/study_detail.html", context, status=status)


@login_required
@permission_required("imaging.view_study", raise_exception=True)
@require_GET
def study_viewer(request, pk):
    """The diagnostic viewer (viewer/, bundled into imaging/static/imaging/viewer/): the study's
    first series as a stack, its images read from our own WADO-RS with the staff session."""
    study = study_or_404(pk)
    study_open_record(
        actor=Actor.for_user(request.user), study=study, page="viewer", address=client_address(request)
    )
    shown = list(selectors.study_series(study=study).filter(image_count__gt=0))
    series = shown[0] if shown else None
    # The DICOMweb root the viewer's requests go to, same origin: the session cookie authenticates them.
    dicomweb_root = reverse("dicomweb:studies").removesuffix("studies")
    # The series strip (viewer/src/display.js): every series with images, its thumbnail from WADO-RS.
    series_strip = [
        {"uid": s.series_instance_uid, "number": s.series_number, "description": s.description,
         "modality": s.modality, "images": s.image_count, "id": s.pk}
        for s in shown
    ]  # fmt: skip
    context = {"study": study, "series": series, "dicomweb_root": dicomweb_root, "series_strip": series_strip,
               **report_panel_context(request, study)}  # fmt: skip
    return render(request, "imaging/study_viewer.html", context)


@login_required
@permission_required("imaging.view_series", raise_exception=True)
@require_GET
def series_thumbnail(request, pk):
    series = get_object_or_404(Series, pk=pk)
    if not series.thumbnail_key:
        raise Http404("No thumbnail yet.")
    try:
        data = storage.object_get(series.thumbnail_key)
    except OSError:  # FileNotFoundError on disk and on S3
        raise Http404("No thumbnail.") from None
    response = HttpResponse(data, content_type="image/png")
    # Pages link to it with the storage key in the query, so a new rendering is a new URL.
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


@login_required
@permission_required("imaging.view_study", raise_exception=True)
@require_GET
def reading_list(request):
    """The reading list: ?q=&date_from=&date_to=&modality=&species=&station=&referring=&report=
    &page=, PAGE_SIZE studies a page."""
    filters, study_ids = reading.reading_list(request.GET)
    page = Paginator(study_ids, reading.PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = reading.reading_rows(list(page.object_list))
    opened = studies_opened_by(user=request.user, study_ids=[study.pk for study in page.object_list])
    for study in page.object_list:
        study.opened_by_me = study.pk in opened
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "imaging/reading_list.html", {
        "filters": filters,
        "page": page,
        "query": query.urlencode(),
        "today": clock.today(),
        "filtered": any(v for k, v in request.GET.items() if k != "page"),
    })  # fmt: skip
