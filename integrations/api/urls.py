from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path, re_path, register_converter
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from integrations.api import annotations, exports, imaging, patients, reference, reports
from integrations.api.errors import error_body
from integrations.api.parsers import guarded
from integrations.webhooks import views as webhooks
from sending import api as sending_api
from sharing import api as sharing


class RecordId:
    """A primary key that fits the database's integers: longer digit runs are a plain 404,
    not an overflow deep in the database driver."""

    regex = "[0-9]{1,18}"
    to_python = int
    to_url = str


register_converter(RecordId, "id")


class Uid:
    """A DICOM UID (PS3.5 9.1: digits and dots, 64 characters at most)."""

    regex = "[0-9.]{1,64}"
    to_python = str
    to_url = str


class PictureFormat:
    regex = "(?:jpg|png)"
    to_python = str
    to_url = str


register_converter(Uid, "uid")
register_converter(PictureFormat, "picture")


@csrf_exempt  # (any method: a POST with a session cookie gets the 404 too, not the CSRF page)
def not_found(request: HttpRequest) -> JsonResponse:
    """Any other address under /api/v1/ (``/api/v1/owners/abc``): the API's JSON 404, with DEBUG
    on too (Django's debug 404 page is HTML, and handler404 is only asked with DEBUG off)."""
    return JsonResponse(error_body(404, "There is nothing at this address."), status=404)


def api(route: str, view: Callable[..., HttpResponse], name: str) -> URLPattern:
    return path(route, guarded(view), name=name)


urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api_schema"), name="api_docs"),
    api("api/v1/health", reference.Health.as_view(), name="api_health"),
    api("api/v1/species", reference.SpeciesList.as_view(), name="api_species"),
    api("api/v1/breeds", reference.BreedList.as_view(), name="api_breeds"),
    api("api/v1/modalities", reference.ModalityList.as_view(), name="api_modalities"),
    api("api/v1/procedures", reference.ProcedureList.as_view(), name="api_procedures"),
    api("api/v1/crosswalk", reference.CrosswalkList.as_view(), name="api_crosswalk"),
    api("api/v1/owners", patients.OwnerList.as_view(), name="api_owners"),
    api("api/v1/owners/<id:pk>", patients.OwnerDetail.as_view(), name="api_owner"),
    api(
        "api/v1/owners/external/<str:external_id>",
        patients.OwnerExternal.as_view(),
        name="api_owner_external",
    ),
    api("api/v1/patients", patients.PatientList.as_view(), name="api_patients"),
    api("api/v1/patients/<id:pk>", patients.PatientDetail.as_view(), name="api_patient"),
    api(
        "api/v1/patients/external/<str:external_id>",
        patients.PatientExternal.as_view(),
        name="api_patient_external",
    ),
    api("api/v1/visits", imaging.VisitList.as_view(), name="api_visits"),
    api("api/v1/orders", imaging.OrderList.as_view(), name="api_orders"),
    api("api/v1/orders/<id:pk>", imaging.OrderDetail.as_view(), name="api_order"),
    api("api/v1/orders/<id:pk>/reschedule", imaging.OrderReschedule.as_view(), name="api_order_reschedule"),
    api("api/v1/orders/<id:pk>/cancel", imaging.OrderCancel.as_view(), name="api_order_cancel"),
    api("api/v1/studies", imaging.StudyList.as_view(), name="api_studies"),
    api("api/v1/studies/<id:pk>", imaging.StudyDetail.as_view(), name="api_study"),
    api("api/v1/studies/<id:pk>/annotations", annotations.StudyAnnotations.as_view(), name="api_annotations"),
    api(
        "api/v1/studies/<id:pk>/annotations/versions",
        annotations.StudyAnnotationVersions.as_view(),
        name="api_annotation_versions",
    ),
    api(
        "api/v1/studies/<id:pk>/annotations/key-image",
        annotations.StudyKeyImage.as_view(),
        name="api_key_image",
    ),
    api(
        "api/v1/studies/<id:pk>/annotations/export",
        annotations.StudyAnnotationExport.as_view(),
        name="api_annotations_export",
    ),
    api(
        "api/v1/studies/<id:pk>/measurements/history",
        annotations.StudyMeasurementHistory.as_view(),
        name="api_measurement_history",
    ),
    # Sharing (sharing/api.py): share links and consults.
    api("api/v1/studies/<id:pk>/share-links", sharing.StudyShareLinks.as_view(), name="api_share_links"),
    api("api/v1/studies/<id:pk>/consults", sharing.StudyConsults.as_view(), name="api_consults"),
    api("api/v1/consults/<id:pk>", sharing.ConsultDetail.as_view(), name="api_consult"),
    # Exports (imaging/export/): a ZIP with a DICOMDIR, an image with its marks, the report's PDF.
    api("api/v1/studies/<id:pk>/export.zip", exports.StudyExportZip.as_view(), name="api_study_export_zip"),
    api(
        "api/v1/studies/<id:pk>/instances/<uid:sop>/frames/<id:frame>/export.<picture:ext>",
        exports.ImageExport.as_view(),
        name="api_image_export",
    ),
    api("api/v1/studies/<id:pk>/report.pdf", exports.ReportPdf.as_view(), name="api_report_pdf"),
    api("api/v1/reports", reports.ReportList.as_view(), name="api_reports"),
    api("api/v1/reports/<id:pk>", reports.ReportDetail.as_view(), name="api_report"),
    api("api/v1/reports/<id:pk>/amend", reports.ReportAmend.as_view(), name="api_report_amend"),
    api("api/v1/webhooks", webhooks.SubscriptionList.as_view(), name="api_webhooks"),
    api("api/v1/webhooks/<id:pk>", webhooks.SubscriptionDetail.as_view(), name="api_webhook"),
    api("api/v1/webhooks/deliveries", webhooks.DeliveryList.as_view(), name="api_webhook_deliveries"),
    api("api/v1/webhooks/deliveries/<id:pk>", webhooks.DeliveryDetail.as_view(), name="api_webhook_delivery"),
    api(
        "api/v1/webhooks/deliveries/<id:pk>/redeliver",
        webhooks.Redeliver.as_view(),
        name="api_webhook_redeliver",
    ),
    # Last: nothing above answered. (Only under v1: /api/schema without its slash is still
    # redirected to it by CommonMiddleware, which asks only when no pattern matches.)
    # Sending (sending/api.py)
    api("api/v1/studies/<id:pk>/sends", sending_api.StudySends.as_view(), name="api_study_sends"),
    api("api/v1/sends/<id:pk>", sending_api.SendDetail.as_view(), name="api_send"),
    re_path(r"^api/v1/", guarded(not_found)),
]
