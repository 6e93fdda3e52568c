"""Reports over REST (read): what the vets signed, for the PMS to file with the visit.

Vets write reports in the web UI (imaging/reports.py); a PMS hears of a signed one by webhook
(``report.finalized``) or HL7 ORU^R01 and reads it here, or pulls ``?updated_since=``.
"""
from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.response import Response

from imaging.models import Report
from integrations.api.sync import etag, updated_since


class ReportSerializer(serializers.ModelSerializer):
    study = serializers.PrimaryKeyRelatedField(read_only=True)
    order = serializers.IntegerField(source="study.order_id", read_only=True, allow_null=True)
    patient = serializers.IntegerField(source="study.patient_id", read_only=True, allow_null=True)
    accession_number = serializers.CharField(source="study.accession_number", read_only=True)
    viewer_url = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = ["id", "study", "order", "patient", "accession_number", "status", "version", "findings",
                  "conclusion", "signed_by_name", "finalized_at", "viewer_url", "created", "updated"]  # fmt: skip

    def get_viewer_url(self, report) -> str:
        return settings.SITE_URL + reverse("study_detail", args=[report.study_id]) + "#report"


REPORT_FILTERS = [
    OpenApiParameter("study", int), OpenApiParameter("order", int), OpenApiParameter("patient", int),
    OpenApiParameter("status", str, enum=Report.Status.values,
                     description="draft, final or amended; `final` also finds amended reports"),
    OpenApiParameter("updated_since", str, description="ISO 8601 date-time"),
]  # fmt: skip


def _id_param(params, name):
    value = params.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise ValidationError({name: [f"A {name} id (a whole number)."]})
    return int(value)


@extend_schema_view(get=extend_schema(parameters=REPORT_FILTERS))
class ReportList(ListAPIView):
    """Reports, drafts included (their status says so); only signed ones are the clinic's word."""

    resource = "reports"
    serializer_class = ReportSerializer

    def get_queryset(self):
        found = Report.objects.select_related("study")
        params = self.request.query_params
        for name, field in (("study", "study_id"), ("order", "study__order_id"), ("patient", "study__patient_id")):
            value = _id_param(params, name)
            if value is not None:
                found = found.filter(**{field: value})
        wanted = params.get("status")
        if wanted:
            if wanted not in Report.Status.values:
                raise ValidationError({"status": [f"One of {', '.join(Report.Status.values)}."]})
            statuses = [Report.Status.FINAL, Report.Status.AMENDED] if wanted == Report.Status.FINAL else [wanted]
            found = found.filter(status__in=statuses)
        return updated_since(found, self.request)


class ReportDetail(GenericAPIView):
    resource = "reports"
    serializer_class = ReportSerializer

    def get(self, request, pk):
        report = Report.objects.select_related("study").filter(pk=pk).first()
        if report is None:
            raise NotFound("No such report.")
        return Response(self.get_serializer(report).data, headers={"ETag": etag(report)})
