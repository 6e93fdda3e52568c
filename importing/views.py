"""The pages' side: the drop zone's XHR posts here (JSON back), and the result page."""

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from imaging.models import Study
from imaging.reconcile.selectors import match_suggestions
from importing.models import Upload
from importing.receiving import UploadProblem, request_prepare, upload_from_request
from vetclinic.audit.services import Actor


@csrf_exempt  # checked below, after the size: Django's check reads the whole body first
@login_required
@permission_required("imaging.change_study", raise_exception=True)
@require_POST
def upload_create(request: HttpRequest) -> HttpResponse:
    try:
        request_prepare(request)
        refused = CsrfViewMiddleware(lambda _: HttpResponse()).process_view(request, None, (), {})
        if refused is not None:
            return refused
        upload = upload_from_request(
            request.FILES.getlist("files"), request.POST.getlist("paths"), request.POST.dict(),
            actor=Actor.for_user(request.user),
            sender={"channel": "ui", "name": request.user.get_username(), "user_id": request.user.pk},
        )  # fmt: skip
    except UploadProblem as problem:
        return JsonResponse({"error": problem.message, "field": problem.field}, status=problem.status)
    return JsonResponse(
        {"id": upload.pk, "url": reverse("upload_detail", args=[upload.pk]),
         "stored": len(upload.stored), "refused": len(upload.refused)},
        status=201,
    )  # fmt: skip


@login_required
@permission_required("imaging.view_study", raise_exception=True)
@require_GET
def upload_detail(request: HttpRequest, pk: int) -> HttpResponse:
    upload = get_object_or_404(Upload.objects.select_related("patient", "order", "user"), pk=pk)
    counts: dict[str, int] = {}
    for item in upload.stored:
        counts[item["study_instance_uid"]] = counts.get(item["study_instance_uid"], 0) + 1
    studies = []
    for result in upload.studies:
        study = Study.objects.filter(pk=result["study_id"]).first() if result["study_id"] else None
        suggestions = match_suggestions(study=study) if study is not None and not result["linked"] else []
        studies.append({**result, "study": study, "images": counts.get(result["study_instance_uid"], 0),
                        "suggestions": suggestions})  # fmt: skip
    context = {"upload": upload, "studies": studies, "pending": len(counts)}
    return render(request, "importing/upload_detail.html", context)
