"""The study page's download links: thin over the export services; the REST API's endpoints
(integrations/api/exports.py) call the same ones. Errors are JSON naming the parameter."""

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from imaging.archive.rendering import JPEG, PNG, CannotRender
from imaging.export.burned import NoSuchImage, image_burned
from imaging.export.permissions import EXPORT_IMAGES, EXPORT_REPORT
from imaging.export.report_pdf import NoReport, report_pdf
from imaging.export.selection import NotExportable, NotStored
from imaging.export.study_zip import StudyZip, study_zip, zip_chunks
from imaging.models import Study
from vetclinic.audit.services import Actor

MEDIA = {"jpg": JPEG, "png": PNG}


def refused(status: int, message: str, field: str | None = None) -> JsonResponse:
    code = {404: "not_found", 409: "conflict"}.get(status, "validation_error")  # as the API's (errors.py)
    body: dict[str, object] = {"code": code, "message": message}
    if field:
        body["fields"] = {field: [message]}
    return JsonResponse({"error": body}, status=status)


def _study(pk: int) -> Study | None:
    return Study.objects.select_related("patient__species", "patient__breed").filter(pk=pk).first()


def attachment(response: HttpResponseBase, filename: str) -> HttpResponseBase:
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"  # patient data: not kept by a proxy
    return response


def zip_response(export: StudyZip) -> StreamingHttpResponse:
    response = StreamingHttpResponse(zip_chunks(export), content_type="application/zip")
    attachment(response, export.filename)
    return response


@login_required
@permission_required(EXPORT_IMAGES, raise_exception=True)
@require_GET
def study_zip_download(request: HttpRequest, pk: int) -> HttpResponseBase:
    study = _study(pk)
    if study is None:
        return refused(404, "No such study.")
    series = [uid for value in request.GET.getlist("series") for uid in value.split(",") if uid.strip()]
    try:
        export = study_zip(actor=Actor.for_user(request.user), study=study, series_uids=series or None)
    except NotExportable as error:
        return refused(404 if isinstance(error, NotStored) else 409, error.message, error.field)
    return zip_response(export)


@login_required
@permission_required(EXPORT_IMAGES, raise_exception=True)
@require_GET
def image_download(request: HttpRequest, pk: str, sop: str, frame: str, ext: str) -> HttpResponseBase:
    study = _study(int(pk))
    if study is None:
        return refused(404, "No such study.")
    annotations = request.GET.get("annotations", "1")
    if annotations not in ("0", "1"):
        return refused(400, "annotations must be 0 or 1.", "annotations")
    try:
        body = image_burned(
            actor=Actor.for_user(request.user), study=study, sop_instance_uid=sop, frame=int(frame),
            media_type=MEDIA[ext], annotations=annotations == "1",
        )  # fmt: skip
    except NoSuchImage as error:
        return refused(404, str(error))
    except NotExportable as error:
        return refused(404 if isinstance(error, NotStored) else 409, error.message, error.field)
    except CannotRender as error:
        return refused(409, f"The image cannot be drawn: {error}", "instance")
    return attachment(HttpResponse(body, content_type=MEDIA[ext]), f"study-{pk}-image.{ext}")


@login_required
@permission_required(EXPORT_REPORT, raise_exception=True)
@require_GET
def report_download(request: HttpRequest, pk: int) -> HttpResponseBase:
    study = _study(pk)
    if study is None:
        return refused(404, "No such study.")
    try:
        body = report_pdf(actor=Actor.for_user(request.user), study=study)
    except NoReport as error:
        return refused(404, str(error))
    except NotExportable as error:
        return refused(409, error.message, error.field)
    return attachment(HttpResponse(body, content_type="application/pdf"), f"study-{pk}-report.pdf")
