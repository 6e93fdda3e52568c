"""Adding photos and video to an animal: the page (patient page > "Add photos or video") and
``POST /api/v1/patients/{id}/photos``. Both are thin adapters over photos.photos_store."""

from typing import Any

from django.contrib.auth.decorators import login_required, permission_required
from django.core.files.uploadedfile import UploadedFile
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from imaging.models import ImagingOrder
from importing.photos import KINDS, REGIONS, PhotoResult, photo_max_bytes, photos_store
from integrations.api.auth import actor_for
from patients.models import Patient, Visit
from vetclinic.audit.services import Actor

MAX_FILES = 100  # per upload


def _files_read(uploads: list[UploadedFile]) -> tuple[list[tuple[str, bytes]], list[PhotoResult]]:
    """The uploads' bytes; one over the size limit is refused by its declared size, unread."""
    files, refused = [], []
    for upload in uploads:
        name = (upload.name or "file")[:200]
        if (upload.size or 0) > photo_max_bytes():
            refused.append(PhotoResult(name, error=f"too big (at most {photo_max_bytes() / 2**20:.0f} MB)"))
        else:
            files.append((name, upload.read()))
    return files, refused


def _choice(model: Any, value: object, patient: Patient, field: str) -> Any:
    """The animal's visit or order named by ``value`` (a pk), or None when empty."""
    if value in (None, ""):
        return None
    try:
        return model.objects.get(pk=int(str(value)), patient=patient)
    except (ValueError, model.DoesNotExist):
        raise ValueError(f"{field}: not one of this animal's") from None


def photos_upload(
    patient: Patient, data: Any, uploads: list[UploadedFile], actor: Actor
) -> tuple[list[PhotoResult], dict[str, str]]:
    """Check the choices, read and store the files: (per-file results, field errors)."""
    kind, region = str(data.get("kind") or "photo"), str(data.get("region") or "")
    try:
        visit = _choice(Visit, data.get("visit"), patient, "visit")
        order = _choice(ImagingOrder, data.get("order"), patient, "order")
        if not uploads:
            raise ValueError("files: choose at least one photo or video")
        if len(uploads) > MAX_FILES:
            raise ValueError(f"files: at most {MAX_FILES} files at a time")
        files, refused = _files_read(uploads)
        results = photos_store(files, patient=patient, visit=visit, order=order, kind=kind,  # type: ignore[arg-type]
                               region=region, actor=actor) if files else []  # fmt: skip
    except ValueError as error:
        field, _, message = str(error).partition(": ")
        return [], {field: message}
    return refused + results, {}


@login_required
@permission_required("imaging.change_study", raise_exception=True)
def photo_upload_page(request: HttpRequest, pk: int) -> HttpResponse:
    patient = Patient.objects.filter(pk=pk, merged_into__isnull=True).select_related("species").first()
    if patient is None:
        raise Http404("No such patient.")
    results: list[PhotoResult] = []
    errors: dict[str, str] = {}
    if request.method == "POST":
        results, errors = photos_upload(
            patient, request.POST, request.FILES.getlist("files"), Actor.for_user(request.user)
        )
    context = {
        "patient": patient,
        "visits": patient.visits.order_by("-starts_at")[:50],
        "orders": ImagingOrder.objects.filter(patient=patient)
        .select_related("procedure")
        .order_by("-scheduled_start")[:50],
        "kinds": KINDS,
        "regions": sorted((key, meaning) for key, (_, meaning) in REGIONS.items()),
        "results": results,
        "stored": [r for r in results if not r.error],
        "failed": [r for r in results if r.error],
        "errors": errors,
        "chosen": request.POST if request.method == "POST" else {},
        "max_mb": photo_max_bytes() // 2**20,
    }
    return render(request, "importing/photo_upload.html", context, status=400 if errors else 200)


class PhotoUploadSerializer(serializers.Serializer[Any]):
    files = serializers.ListField(
        child=serializers.FileField(), help_text="JPEG, PNG, HEIC or H.264 MP4 files"
    )
    kind = serializers.ChoiceField(choices=KINDS, default="photo")
    region = serializers.ChoiceField(
        choices=sorted(REGIONS), required=False, help_text="The region examined; required for endoscopy"
    )
    visit = serializers.IntegerField(required=False, help_text="One of the animal's visits")
    order = serializers.IntegerField(required=False, help_text="One of the animal's orders: its study")


class PhotoResultSerializer(serializers.Serializer[Any]):
    filename = serializers.CharField()
    sop_instance_uid = serializers.CharField(required=False)
    sop_class_uid = serializers.CharField(required=False)
    transfer_syntax = serializers.CharField(required=False)
    study_instance_uid = serializers.CharField(required=False)
    error = serializers.CharField(
        required=False, help_text="Why this file was not stored (nothing of it was)"
    )


class PhotoUploadAnswer(serializers.Serializer[Any]):
    results = PhotoResultSerializer(many=True)


class PatientPhotos(GenericAPIView[Any]):
    """Photos and video of an animal, wrapped as DICOM objects (VL Photographic / Endoscopic
    Image, Video Photographic / Endoscopic Image) and stored: 201 all stored, 202 some not
    (each result says why), 400 none."""

    resource = "studies"
    parser_classes = [MultiPartParser]
    serializer_class = PhotoUploadSerializer

    @extend_schema(
        request={"multipart/form-data": PhotoUploadSerializer},
        # (400 and the other errors: the API's one error shape, integrations/api/schema.py adds them.)
        responses={201: PhotoUploadAnswer, 202: PhotoUploadAnswer},
    )
    def post(self, request: Request, pk: int) -> Response:
        patient = Patient.objects.filter(pk=pk, merged_into__isnull=True).first()
        if patient is None:
            raise NotFound("No such patient.")
        results, errors = photos_upload(
            patient, request.data, request.FILES.getlist("files"), actor_for(request)
        )
        if errors:
            raise ValidationError({field: [message] for field, message in errors.items()})
        body = {"results": [result.as_dict() for result in results]}
        stored = sum(1 for result in results if not result.error)
        code = status.HTTP_201_CREATED if stored == len(results) else status.HTTP_202_ACCEPTED
        if not stored:
            raise ValidationError({"files": [f"{r.filename}: {r.error}" for r in results]})
        return Response(body, status=code)
