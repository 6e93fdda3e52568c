from django.urls import path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from integrations.api import imaging, patients, reference, reports
from integrations.webhooks import views as webhooks

class RecordId:
    """A primary key that fits the database's integers: longer digit runs are a plain 404,
    not an overflow deep in the database driver."""

    regex = "[0-9]{1,18}"
    to_python = int
    to_url = str


register_converter(RecordId, "id")

urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api_schema"), name="api_docs"),
    path("api/v1/health", reference.Health.as_view(), name="api_health"),
    path("api/v1/species", reference.SpeciesList.as_view(), name="api_species"),
    path("api/v1/breeds", reference.BreedList.as_view(), name="api_breeds"),
    path("api/v1/modalities", reference.ModalityList.as_view(), name="api_modalities"),
    path("api/v1/procedures", reference.ProcedureList.as_view(), name="api_procedures"),
    path("api/v1/crosswalk", reference.CrosswalkList.as_view(), name="api_crosswalk"),
    path("api/v1/owners", patients.OwnerList.as_view(), name="api_owners"),
    path("api/v1/owners/<id:pk>", patients.OwnerDetail.as_view(), name="api_owner"),
    path("api/v1/owners/external/<str:external_id>", patients.OwnerExternal.as_view(), name="api_owner_external"),
    path("api/v1/patients", patients.PatientList.as_view(), name="api_patients"),
    path("api/v1/patients/<id:pk>", patients.PatientDetail.as_view(), name="api_patient"),
    path("api/v1/patients/external/<str:external_id>", patients.PatientExternal.as_view(), name="api_patient_external"),
    path("api/v1/visits", imaging.VisitList.as_view(), name="api_visits"),
    path("api/v1/orders", imaging.OrderList.as_view(), name="api_orders"),
    path("api/v1/orders/<id:pk>", imaging.OrderDetail.as_view(), name="api_order"),
    path("api/v1/orders/<id:pk>/reschedule", imaging.OrderReschedule.as_view(), name="api_order_reschedule"),
    path("api/v1/orders/<id:pk>/cancel", imaging.OrderCancel.as_view(), name="api_order_cancel"),
    path("api/v1/studies", imaging.StudyList.as_view(), name="api_studies"),
    path("api/v1/studies/<id:pk>", imaging.StudyDetail.as_view(), name="api_study"),
    path("api/v1/reports", reports.ReportList.as_view(), name="api_reports"),
    path("api/v1/reports/<id:pk>", reports.ReportDetail.as_view(), name="api_report"),
    path("api/v1/reports/<id:pk>/amend", reports.ReportAmend.as_view(), name="api_report_amend"),
    path("api/v1/webhooks", webhooks.SubscriptionList.as_view(), name="api_webhooks"),
    path("api/v1/webhooks/<id:pk>", webhooks.SubscriptionDetail.as_view(), name="api_webhook"),
    path("api/v1/webhooks/deliveries", webhooks.DeliveryList.as_view(), name="api_webhook_deliveries"),
    path("api/v1/webhooks/deliveries/<id:pk>", webhooks.DeliveryDetail.as_view(), name="api_webhook_delivery"),
    path("api/v1/webhooks/deliveries/<id:pk>/redeliver", webhooks.Redeliver.as_view(), name="api_webhook_redeliver"),
]
