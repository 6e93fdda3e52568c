"""The reconciliation queue, linking and splitting: thin adapters that validate a form and call a
service."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from imaging.models import Series, Study
from imaging.reconcile import selectors
from imaging.reconcile import services as reconcile
from imaging.reconcile.forms import PatientChoiceForm
from imaging.studies.views import study_title
from vetclinic.audit.services import Actor

QUEUE_PAGE = 25


def _actor(request):
    return Actor.for_user(request.user)


def _form_error(request, form, study):
    errors = [e for field_errors in form.errors.values() for e in field_errors]
    messages.error(request, f"{study_title(study)}: {' '.join(errors)} Nothing was changed.")


def _stale(form, study):
    """The page showed the study with another patient (or none): someone changed it since."""
    current = form.cleaned_data["current"]
    return current != "" and current != str(study.patient_id or "none")


@login_required
@permission_required("imaging.view_study", raise_exception=True)
@require_GET
def reconciliation(request):
    queue = selectors.reconciliation_queue()
    studies = list(queue[:QUEUE_PAGE])
    for study in studies:
        study.suggestions = selectors.match_suggestions(study=study)
    context = {"studies": studies, "total": queue.count() if len(studies) == QUEUE_PAGE else len(studies)}
    return render(request, "imaging/reconciliation.html", context)


@login_required
@permission_required("imaging.change_study", raise_exception=True)
@require_POST
def study_link(request, pk):
    """Link a study to the animal with the given patient ID (from the queue or the study page)."""
    study = get_object_or_404(Study, pk=pk)
    back = (
        redirect("reconciliation") if request.POST.get("back") == "queue" else redirect("study_detail", pk=pk)
    )
    form = PatientChoiceForm(request.POST)
    if not form.is_valid():
        _form_error(request, form, study)
        return back
    if _stale(form, study):
        messages.error(
            request,
            f"{study_title(study)} was changed by someone else meanwhile; look again. Nothing was changed.",
        )
        return back
    patient = form.cleaned_data["patient_id"]
    try:
        reconcile.study_link_manual(
            actor=_actor(request), study=study, patient=patient,
            species_override=form.cleaned_data["species_override"],
        )  # fmt: skip
    except ValidationError as error:
        messages.error(request, f"{study_title(study)}: {' '.join(error.messages)}")
        return back
    messages.success(
        request,
        f"{study_title(study)} linked to {patient.name} ({patient.patient_id}); its images are being updated.",
    )
    return back


@login_required
@permission_required("imaging.change_study", raise_exception=True)
@require_POST
def series_split(request, pk):
    """Split one series off its study into a new study of the animal with the given patient ID."""
    series = get_object_or_404(Series.objects.select_related("study"), pk=pk)
    form = PatientChoiceForm(request.POST)
    if not form.is_valid():
        _form_error(request, form, series.study)
        return redirect("study_detail", pk=series.study_id)
    patient = form.cleaned_data["patient_id"]
    try:
        new = reconcile.series_split(
            actor=_actor(request), series=series, patient=patient,
            species_override=form.cleaned_data["species_override"],
        )  # fmt: skip
    except ValidationError as error:
        messages.error(request, f"Series {series}: {' '.join(error.messages)}")
        return redirect("study_detail", pk=series.study_id)
    messages.success(
        request, f"Series {series} is now a study of its own for {patient.name} ({patient.patient_id}); "
        "its images are being updated.",
    )  # fmt: skip
    return redirect("study_detail", pk=new.pk)
