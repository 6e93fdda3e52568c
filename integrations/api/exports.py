"""Exports over REST: a study (or some series) as a ZIP with a DICOMDIR, an image with its
annotations burned in, the signed report as a PDF. Thin over imaging/export/ (the study page's
links call the same services).

Scopes: the ZIP and the image need ``studies:read`` (for staff, also the permission to take
images out, imaging/export/permissions.py); the PDF ``reports:read``. Errors are the API's JSON
error body, whatever the Accept header asked for.
"""

import re
from typing import Any

from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, permissions
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from imaging.archive.rendering import JPEG, PNG, CannotRender
from imaging.export.burned import NoSuchImage, image_burned
from imaging.export.permissions import EXPORT_IMAGES
from imaging.export.report_pdf import NoReport, report_pdf
from imaging.export.selection import NotExportable, NotStored
from imaging.export.study_zip import study_zip, zip_chunks
from imaging.models import Study
from integrations.api.auth import ClientUser, actor_for
from integrations.api.errors import error_body
from integrations.dicomweb.rendered import window_parse

MEDIA = {"jpg": JPEG, "png": PNG}


class MayExportImages(permissions.BasePermission):
    """Staff also need the permission to take images out of the clinic; an API client's
    ``studies:read`` scope is that permission (ResourceScope checks it)."""

    message = "Your role may not export images (imaging/export/permissions.py)."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.user, ClientUser) or bool(
            request.user and request.user.has_perm(EXPORT_IMAGES)
        )


class ExportView(GenericAPIView):
    queryset = Study.objects.none()  # (the schema's path parameter: a study id)

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        """The body is a ZIP, a picture or a PDF whatever Accept says; only an error is JSON."""
        return super().perform_content_negotiation(request, force=True)


def _study(pk: int) -> Study:
    study = Study.objects.select_related("patient__species", "patient__breed").filter(pk=pk).first()
    if study is None:
        raise NotFound("No such study.")
    return study


def _attachment(response: HttpResponseBase, filename: str) -> HttpResponseBase:
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


def _refused(error: NotExportable) -> Response:
    """404 for a series, instance or frame the study does not have; 409 for what the stored
    object's state does not allow (no pixel data, not readable, a draft report)."""
    status = 404 if isinstance(error, NotStored) else 409
    return Response(error_body(status, error.message, {error.field: [error.message]}), status=status)


# The query parameters' forms, in the schema: anything else is a 400 naming the parameter.
CONFLICT = OpenApiResponse(
    response={"$ref": "#/components/schemas/Error"},
    description="What is stored does not allow it (an object not in storage, no pixel data, a draft report); "
    "`fields` names the instance or report",
)
UID_LIST = r"^[0-9.]{1,64}(,[0-9.]{1,64})*$"
# (A linear window's width is at least 1, PS3.3 C.11.2.1.2.1.)
WINDOW = (
    r"^-?[0-9]{1,9}(\.[0-9]{1,6})?,[0-9]{0,8}[1-9][0-9]{0,8}(\.[0-9]{1,6})?(,(linear|linear-exact|sigmoid))?$"
)


class StudyExportZip(ExportView):
    """The study's stored DICOM objects, byte for byte, with a DICOMDIR (IHE PDI file IDs), a
    JPEG preview per series and a README.TXT, as a ZIP streamed as it is written."""

    resource = "studies"
    permission_classes = [*APIView.permission_classes, MayExportImages]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "series",
                OpenApiTypes.STR,
                many=True,
                explode=True,
                pattern=UID_LIST,
                description="Series Instance UIDs to export (repeated or comma-separated); none: the whole "
                "study. A series the study does not have: 404 naming it.",
            )
        ],  # fmt: skip
        responses={(200, "application/zip"): OpenApiTypes.BINARY, 409: CONFLICT},
    )
    def get(self, request: Request, pk: int) -> HttpResponseBase:
        study = _study(pk)
        given = [
            value for value in request.query_params.getlist("series") if value
        ]  # series=: the whole study
        if any(not re.match(UID_LIST, value) for value in given):
            raise exceptions.ValidationError(
                {"series": ["Give Series Instance UIDs: digits and dots, comma-separated."]}
            )
        series = [uid for value in given for uid in value.split(",")]
        try:
            export = study_zip(actor=actor_for(request), study=study, series_uids=series or None)
        except NotExportable as error:
            return _refused(error)
        response = StreamingHttpResponse(zip_chunks(export), content_type="application/zip")
        return _attachment(response, export.filename)


class ImageExport(ExportView):
    """One frame of an image rendered with its window, the study's saved annotations of that
    frame drawn on it (``annotations=0``: without them)."""

    resource = "studies"
    permission_classes = [*APIView.permission_classes, MayExportImages]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "annotations", OpenApiTypes.INT, enum=[0, 1], description="1 (default): draw them"
            ),
            OpenApiParameter(
                "window",
                OpenApiTypes.STR,
                pattern=WINDOW,
                description="center,width[,function] (PS3.18 8.3.5.1.4); default: the object's own window",
            ),
        ],
        responses={
            (200, "image/jpeg"): OpenApiTypes.BINARY,
            (200, "image/png"): OpenApiTypes.BINARY,
            409: CONFLICT,
        },
    )
    def get(self, request: Request, pk: int, sop: str, frame: int, ext: str) -> HttpResponseBase:
        study = _study(pk)
        errors: dict[str, list[str]] = {}
        annotations = str(request.query_params.get("annotations", "1"))
        if annotations not in ("0", "1"):
            errors["annotations"] = ["Give 0 or 1."]
        window = None
        if request.query_params.get("window"):  # window=: the object's own
            try:
                window = window_parse(str(request.query_params["window"]))
            except ValueError as error:
                errors["window"] = [str(error)]
        if errors:
            raise exceptions.ValidationError(errors)
        try:
            body = image_burned(
                actor=actor_for(request), study=study, sop_instance_uid=sop, frame=frame, media_type=MEDIA[ext],
                annotations=annotations == "1", window=window,
            )  # fmt: skip
        except NoSuchImage as error:
            raise NotFound(str(error)) from error
        except NotExportable as error:
            return _refused(error)
        except CannotRender as error:
            return _refused(NotExportable("instance", f"The image cannot be drawn: {error}"))
        return _attachment(HttpResponse(body, content_type=MEDIA[ext]), f"study-{pk}-image.{ext}")


class ReportPdf(ExportView):
    """The study's signed report (final or amended) as a PDF with the clinic's letterhead and
    the key images. 409 while it is a draft; 404 when there is none."""

    resource = "reports"

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY, 409: CONFLICT})
    def get(self, request: Request, pk: int) -> HttpResponseBase:
        try:
            body = report_pdf(actor=actor_for(request), study=_study(pk))
        except NoReport as error:
            raise NotFound(str(error)) from error
        except NotExportable as error:
            return _refused(error)
        return _attachment(HttpResponse(body, content_type="application/pdf"), f"study-{pk}-report.pdf")
