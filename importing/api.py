"""REST: ``POST /api/v1/uploads`` (multipart/form-data: ``files``, optional ``paths``,
``patient``, ``order``) and ``GET /api/v1/uploads/{id}``. Scoped as the studies are
(``studies:write`` to upload, ``studies:read`` to look); the same receive as the pages."""

from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import parsers, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from importing.models import Upload
from importing.receiving import UploadProblem, request_prepare, upload_from_request
from integrations.api.auth import actor_for
from integrations.api.errors import error_body


class UploadSerializer(serializers.ModelSerializer[Upload]):
    stored = serializers.ListField(child=serializers.DictField(child=serializers.CharField()), read_only=True)
    refused = serializers.ListField(
        child=serializers.DictField(child=serializers.CharField()), read_only=True
    )
    studies = serializers.ListField(child=serializers.DictField(), read_only=True)

    class Meta:
        model = Upload
        fields = ["id", "status", "sender", "patient", "order", "files_received", "bytes_received",
                  "stored", "refused", "studies", "created", "finished"]  # fmt: skip
        read_only_fields = fields


class UploadForm(serializers.Serializer[Any]):
    """The request (for the schema: the view reads the form itself)."""

    files = serializers.ListField(
        child=serializers.FileField(), help_text="DICOM files, ZIPs, a DICOMDIR and its files"
    )
    paths = serializers.ListField(
        child=serializers.CharField(), required=False,
        help_text="Each file's path in its folder, in the order of files (a DICOMDIR names its files so)",
    )  # fmt: skip
    patient = serializers.IntegerField(required=False, help_text="Link the studies to this patient")
    order = serializers.IntegerField(
        required=False, help_text="Link the studies to this order (and its patient)"
    )


class UploadList(GenericAPIView[Upload]):
    resource = "studies"
    serializer_class = UploadSerializer
    parser_classes = [
        parsers.MultiPartParser,
        parsers.FormParser,
    ]  # (a form without files: a 400 naming them)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        request._upload_problem = None  # type: ignore[attr-defined]
        try:
            request_prepare(request._request)  # before authentication reads anything of the body
        except UploadProblem as problem:
            request._upload_problem = problem  # type: ignore[attr-defined]
        super().initial(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": UploadForm},
        responses={201: UploadSerializer, 400: OpenApiResponse(description="A field at fault"),
                   413: OpenApiResponse(description="Over IMPORT_MAX_BYTES")},
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        actor = actor_for(request)
        user = actor.user if isinstance(actor.user, User) else None
        try:
            if request._upload_problem is not None:  # type: ignore[attr-defined]
                raise request._upload_problem  # type: ignore[attr-defined]
            upload = upload_from_request(
                request.FILES.getlist("files"), request.POST.getlist("paths"), request.POST.dict(),
                actor=actor,
                sender={"channel": actor.channel, "name": actor.name or (user.get_username() if user else ""),
                        "user_id": user.pk if user else None},
            )  # fmt: skip
        except UploadProblem as problem:
            fields = {problem.field: [problem.message]} if problem.status == 400 else None
            return Response(error_body(problem.status, problem.message, fields), status=problem.status)
        return Response(self.get_serializer(upload).data, status=status.HTTP_201_CREATED)


class UploadDetail(GenericAPIView[Upload]):
    resource = "studies"
    serializer_class = UploadSerializer

    def get(self, request: Request, pk: int) -> Response:
        upload = Upload.objects.filter(pk=pk).first()
        if upload is None:
            raise NotFound("No such upload.")
        return Response(self.get_serializer(upload).data)
