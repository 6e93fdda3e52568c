"""Reports over REST: what the vets signed, for the PMS to file with the visit; and writing
them, for a teleradiology service or a PMS with its own report editor.

Vets write reports in the web UI; here the same services (imaging/reports/services.py) draft, sign and
amend them. A PMS hears of a signed one by webhook (``report.finalized``) or HL7 ORU^R01 and
reads it here, or pulls ``?updated_since=``.
"""

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from imaging.models import Report, Study
from imaging.reports import services as report_services
from integrations.api.auth import actor_for
from integrations.api.filters import ReportFilter
from integrations.api.strict import StrictTypes
from integrations.api.sync import etag, idempotent, if_match_check


class ReportSerializer(serializers.ModelSerializer):
    study: "serializers.PrimaryKeyRelatedField[Study]" = serializers.PrimaryKeyRelatedField(read_only=True)
    order = serializers.IntegerField(source="study.order_id", read_only=True, allow_null=True)
    patient = serializers.IntegerField(source="study.patient_id", read_only=True, allow_null=True)
    accession_number = serializers.CharField(source="study.accession_number", read_only=True)
    viewer_url = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = ["id", "study", "order", "patient", "accession_number", "status", "version", "findings",
                  "conclusion", "signed_by_name", "finalized_at", "viewer_url", "created", "updated"]  # fmt: skip

    def get_viewer_url(self, report: Report) -> str:
        site: str = settings.SITE_URL
        return site + reverse("study_detail", args=[report.study_id]) + "#report"


TEXT: dict[str, Any] = {  # (CharField's keyword arguments, each its own type)
    "required": False,
    "allow_blank": True,
    "max_length": report_services.TEXT_LIMIT,
    "trim_whitespace": False,
}


class ReportWriteSerializer(StrictTypes, serializers.Serializer):
    study = serializers.PrimaryKeyRelatedField(queryset=Study.objects.all())
    findings = serializers.CharField(**TEXT)
    conclusion = serializers.CharField(**TEXT)
    status = serializers.ChoiceField(
        choices=[Report.Status.DRAFT, Report.Status.FINAL], default=Report.Status.DRAFT,
        help_text="`draft` keeps it for later; `final` signs it: the order becomes reported and the PMS is told.",
    )  # fmt: skip
    signed_by_name = serializers.CharField(
        required=False, allow_blank=True, max_length=200,
        help_text="The vet who signs, as the report should show; default: the API client's name.",
    )  # fmt: skip


class ReportAmendSerializer(StrictTypes, serializers.Serializer):
    findings = serializers.CharField(**TEXT)
    conclusion = serializers.CharField(**TEXT)
    reason = serializers.CharField(
        max_length=200, help_text="Why the signed report changes; kept and sent on."
    )
    signed_by_name = serializers.CharField(required=False, allow_blank=True, max_length=200)


def _answer(
    report: Report, code: int = status.HTTP_200_OK, context: Mapping[str, Any] | None = None
) -> Response:
    report = Report.objects.select_related("study").get(pk=report.pk)
    return Response(
        ReportSerializer(report, context=context or {}).data, status=code, headers={"ETag": etag(report)}
    )


class ReportList(ListAPIView):
    """Reports, drafts included (their status says so); only signed ones are the clinic's word."""

    resource = "reports"
    serializer_class = ReportSerializer
    filterset_class = ReportFilter

    def get_queryset(self) -> QuerySet[Report]:
        return Report.objects.select_related("study")

    @extend_schema(request=ReportWriteSerializer, responses={200: ReportSerializer, 201: ReportSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        """Write the study's report (one per study): a draft again replaces the draft's text;
        a signed report is amended at ``/reports/{id}/amend`` instead (409 here)."""
        serializer = ReportWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        existed = Report.objects.filter(study=data["study"]).exists()
        text = {
            "study": data["study"],
            "findings": data.get("findings", ""),
            "conclusion": data.get("conclusion", ""),
        }
        if data["status"] == Report.Status.FINAL:
            report = report_services.report_finalize(
                actor=actor_for(request), signer_name=data.get("signed_by_name", ""), **text
            )
        else:
            report = report_services.report_save(actor=actor_for(request), **text)
        return _answer(
            report, status.HTTP_200_OK if existed else status.HTTP_201_CREATED, self.get_serializer_context()
        )


class ReportDetail(GenericAPIView):
    resource = "reports"
    serializer_class = ReportSerializer

    def get(self, request: Request, pk: int) -> Response:
        report = Report.objects.select_related("study").filter(pk=pk).first()
        if report is None:
            raise NotFound("No such report.")
        return Response(self.get_serializer(report).data, headers={"ETag": etag(report)})


class ReportAmend(GenericAPIView):
    resource = "reports"
    serializer_class = ReportAmendSerializer

    @extend_schema(request=ReportAmendSerializer, responses={200: ReportSerializer})
    def post(self, request: Request, pk: int) -> Response:
        """Change a signed report (send ``If-Match`` with its ETag): signed again and sent to the
        PMS as a correction. A draft is changed with POST /reports."""
        report = Report.objects.select_related("study").filter(pk=pk).first()
        if report is None:
            raise NotFound("No such report.")
        if_match_check(request, report)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        report = report_services.report_amend(
            actor=actor_for(request), study=report.study, findings=data.get("findings", ""),
            conclusion=data.get("conclusion", ""), reason=data["reason"], signer_name=data.get("signed_by_name", ""),
        )  # fmt: skip
        return _answer(report, context=self.get_serializer_context())
