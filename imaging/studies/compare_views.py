"""The viewer's JSON for comparing (viewer/src/compare.js): the animal's other studies
(priors.py) and how to hang the study on opening (hanging.py). Same origin, the staff session
authenticates; answers are JSON, errors too, so the viewer can say what went wrong."""

from functools import wraps

from django.db import DatabaseError
from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from imaging.models import Study
from imaging.studies import selectors
from imaging.studies.hanging import study_hanging
from imaging.studies.priors import study_priors


def _error(status: int, field: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"field": field, "message": message}}, status=status)


def study_json(view):
    """A signed-in staff member who may see studies, and the study: else a JSON 401, 403 or 404.
    When the permission cannot be checked (the database is unreachable), the answer is no."""

    @wraps(view)
    def wrapped(request, pk):
        if not request.user.is_authenticated:
            return _error(401, "session", "Sign in to see studies.")
        try:
            allowed = request.user.has_perm("imaging.view_study")
        except DatabaseError:
            return _error(503, "permission", "Whether you may see studies cannot be checked now.")
        if not allowed:
            return _error(403, "permission", "You may not see studies.")
        try:
            study = selectors.study_detail(pk=pk)
        except Study.DoesNotExist:
            return _error(404, "study", f"There is no study {pk}.")
        return view(request, study)

    return require_GET(wrapped)


@study_json
def study_priors_json(request, study):
    """The animal's other studies, newest first; each names, for each series of this study, the
    series of its own to show beside it."""
    priors = []
    for prior in study_priors(study):
        entry = prior.as_json()
        entry["viewer_url"] = reverse("study_viewer", args=[prior.study.pk])
        priors.append(entry)
    return JsonResponse({"study": study.pk, "linked": study.patient_id is not None, "priors": priors})


@study_json
def study_hanging_json(request, study):
    """The hanging protocol that fits the study, its layout and each viewport's series."""
    return JsonResponse({"study": study.pk, **study_hanging(study)})
