"""Orders (write) and studies (read) over REST, over imaging/orders/services.py and the image index."""

from decimal import Decimal

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from imaging.models import ImagingOrder, Modality, Procedure, Study
from imaging.orders import services as order_services
from integrations.api.auth import actor_for
from integrations.api.filters import OrderFilter, StudyFilter, VisitFilter, filter_values
from integrations.api.pagination import PageQuery, prefetched
from integrations.api.rows import STUDY_FIELDS, Row, StudyBody, fields_check, studies_json, study_rows
from integrations.api.selectors import STUDY_PAGES
from integrations.api.strict import KnownFieldsOnly, StrictTypes
from integrations.api.sync import etag, idempotent, if_match_check
from patients.models import Patient, Visit
from patients.services import visit_create


class OrderSerializer(StrictTypes, serializers.ModelSerializer):
    patient = serializers.PrimaryKeyRelatedField(queryset=Patient.objects.filter(merged_into__isnull=True))
    procedure = serializers.SlugRelatedField(
        slug_field="code", queryset=Procedure.objects.filter(active=True)
    )
    station = serializers.SlugRelatedField(slug_field="ae_title", queryset=Modality.objects.filter(active=True),
                                           required=False, allow_null=True)  # fmt: skip
    visit = serializers.PrimaryKeyRelatedField(queryset=Visit.objects.all(), required=False, allow_null=True)
    study_ids = serializers.SerializerMethodField()

    class Meta:
        model = ImagingOrder
        fields = ["id", "patient", "visit", "procedure", "station", "modality_type", "scheduled_start", "duration_minutes",
                  "reason", "referring_vet", "performing_vet", "priority", "teleradiology", "weight_kg", "status",
                  "status_changed", "accession_number", "requested_procedure_id", "scheduled_step_id", "study_instance_uid",
                  "placer_order_number", "filler_order_number", "images_received_at", "study_ids", "updated"]  # fmt: skip
        read_only_fields = ["id", "modality_type", "status", "status_changed", "accession_number", "requested_procedure_id",
                            "scheduled_step_id", "study_instance_uid", "images_received_at", "study_ids", "updated"]  # fmt: skip
        extra_kwargs = {"duration_minutes": {"required": False}}

    def get_study_ids(self, order: ImagingOrder) -> list[int]:
        return [study.pk for study in prefetched(order, "studies_rows", "studies")]


class OrderUpdateSerializer(KnownFieldsOnly, StrictTypes, serializers.ModelSerializer):
    """An order's details, as imaging.orders.services.order_update changes them; only those
    sent change, and any other key is refused. The time and station change by …/reschedule,
    the status by …/cancel (and the modality's reports); the patient, the procedure and the
    PMS's own order numbers are what the order is (HL7 finds it by them)."""

    visit = serializers.PrimaryKeyRelatedField(queryset=Visit.objects.all(), required=False, allow_null=True)
    weight_kg = serializers.DecimalField(
        max_digits=7, decimal_places=3, min_value=Decimal("0.001"), required=False, allow_null=True
    )

    class Meta:
        model = ImagingOrder
        fields = [
            "visit",
            "priority",
            "teleradiology",
            "reason",
            "referring_vet",
            "performing_vet",
            "weight_kg",
        ]


class RescheduleSerializer(StrictTypes, serializers.Serializer):
    scheduled_start = serializers.DateTimeField()
    station = serializers.SlugRelatedField(
        slug_field="ae_title", queryset=Modality.objects.filter(active=True), required=False
    )
    duration_minutes = serializers.IntegerField(min_value=1, max_value=1440, required=False)


class CancelSerializer(StrictTypes, serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True)


def orders_queryset() -> QuerySet[ImagingOrder]:
    return ImagingOrder.objects.select_related("patient", "procedure", "station", "visit").prefetch_related(
        Prefetch("studies", to_attr="studies_rows")  # a list per order (see prefetched)
    )


class OrderList(ListAPIView):
    """Orders; a new one gets its accession number and Study Instance UID and is in the
    worklist at once. ``Idempotency-Key`` makes a retried POST create it only once."""

    resource = "orders"
    serializer_class = OrderSerializer
    filterset_class = OrderFilter

    def get_queryset(self) -> QuerySet[ImagingOrder]:
        return orders_queryset()

    @extend_schema(responses={201: OrderSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        order = order_services.order_create(
            actor=actor_for(request), patient=data.pop("patient"), procedure=data.pop("procedure"),
            scheduled_start=data.pop("scheduled_start"), station=data.pop("station", None),
            duration_minutes=data.pop("duration_minutes", None), **data,
        )  # fmt: skip
        order = orders_queryset().get(pk=order.pk)
        response = Response(self.get_serializer(order).data, status=status.HTTP_201_CREATED)
        response["ETag"] = etag(order)
        return response


# One order, by the path's pk. (A comment, not a docstring: the schema would show it for each view.)
class OrderView(GenericAPIView):
    resource = "orders"

    def order(self) -> ImagingOrder:
        order = orders_queryset().filter(pk=self.kwargs["pk"]).first()
        if order is None:
            raise NotFound("No such order.")
        return order

    def answer(self, order: ImagingOrder) -> Response:
        order = orders_queryset().get(pk=order.pk)
        response = Response(OrderSerializer(order, context={"request": self.request}).data)
        response["ETag"] = etag(order)
        return response


class OrderDetail(OrderView):
    serializer_class = OrderSerializer

    def get(self, request: Request, pk: int) -> Response:
        return self.answer(self.order())

    @extend_schema(
        request=OrderUpdateSerializer, responses={200: OrderSerializer},
        description="Change the order's details: only the fields sent, any other key is a 400 naming it. "
                    "An order completed, reported or cancelled is a 409; values it has already change "
                    "nothing. `If-Match` guards against lost updates.",
    )  # fmt: skip
    def patch(self, request: Request, pk: int) -> Response:
        order = self.order()
        if_match_check(request, order)
        serializer = OrderUpdateSerializer(
            data=request.data, partial=True, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        order = order_services.order_update(
            actor=actor_for(request), order=order, fields=dict(serializer.validated_data)
        )
        return self.answer(order)


class OrderReschedule(OrderView):
    serializer_class = RescheduleSerializer

    @extend_schema(request=RescheduleSerializer, responses={200: OrderSerializer})
    def post(self, request: Request, pk: int) -> Response:
        order = self.order()
        if_match_check(request, order)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order = order_services.order_reschedule(
            actor=actor_for(request), order=order, **serializer.validated_data
        )
        return self.answer(order)


class OrderCancel(OrderView):
    serializer_class = CancelSerializer

    @extend_schema(request=CancelSerializer, responses={200: OrderSerializer})
    def post(self, request: Request, pk: int) -> Response:
        order = self.order()
        if_match_check(request, order)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = serializer.validated_data.get("reason", "")
        order = order_services.order_cancel(actor=actor_for(request), order=order, reason=reason)
        return self.answer(order)


@extend_schema_field({
    "type": "string", "pattern": r"^\d{2}:\d{2}:\d{2}(\.\d{1,6})?$", "example": "10:05:03",
    "description": "The study's local time as the modality sent it (DICOM TM): no time zone",
})  # fmt: skip
class LocalTimeField(serializers.TimeField):
    """A time of day without a zone. (The schema's ``format: time`` is RFC 3339's, which has one.)"""


class StudySerializer(serializers.ModelSerializer):
    # Null until the study is linked to an animal / an order (``link`` says how, or that it waits).
    patient: "serializers.PrimaryKeyRelatedField[Patient]" = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    order: "serializers.PrimaryKeyRelatedField[ImagingOrder]" = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    study_time = LocalTimeField(read_only=True, allow_null=True)
    series_count = serializers.IntegerField(read_only=True)
    instance_count = serializers.IntegerField(read_only=True)
    modalities = serializers.ListField(child=serializers.CharField(), read_only=True)
    viewer_url = serializers.CharField(read_only=True)
    thumbnail_url = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = Study
        fields = ["id", "study_instance_uid", "patient", "order", "link", "accession_number", "study_date", "study_time",
                  "description", "referring_physician", "modalities", "series_count", "instance_count", "received_at",
                  "viewer_url", "thumbnail_url", "updated"]  # fmt: skip

    # (A StudyBody: a dict with its keys named, where the stubs say dict[str, Any].)
    def to_representation(self, study: Study) -> StudyBody:  # type: ignore[override]
        # The one way a study is shown (rows.py), as in the list.
        return studies_json(study_rows(Study.objects.filter(pk=study.pk)))[0]


fields_check(StudySerializer, STUDY_FIELDS)  # rows.py shows what the serializer declares


class StudyList(ListAPIView):
    resource = "studies"
    serializer_class = StudySerializer
    filterset_class = StudyFilter  # (cleaned here, applied in the compiled page: filters.py)

    # (A PageQuery stands in for the queryset: the cursor pages through it, pagination.py.)
    def get_queryset(self) -> PageQuery:  # type: ignore[override]
        return PageQuery(STUDY_PAGES, Study, filter_values(StudyFilter, self.request))

    def list(self, request: Request) -> Response:
        # The page as plain rows, not serializers; StudySerializer still describes it.
        # (A PageQuery, not a QuerySet as DRF's hints have it: its page is rows.)
        rows: list[Row] | None = self.paginate_queryset(self.get_queryset())  # type: ignore[arg-type]
        assert rows is not None  # (None only for a view without a paginator; every list has Cursor)
        return self.get_paginated_response(studies_json(rows))


class StudyDetail(GenericAPIView):
    resource = "studies"
    serializer_class = StudySerializer

    def get(self, request: Request, pk: int) -> Response:
        study = Study.objects.filter(pk=pk).first()
        if study is None:
            raise NotFound("No such study.")
        return Response(self.get_serializer(study).data)


class VisitSerializer(StrictTypes, serializers.ModelSerializer):
    patient = serializers.PrimaryKeyRelatedField(queryset=Patient.objects.filter(merged_into__isnull=True))

    class Meta:
        model = Visit
        fields = ["id", "patient", "starts_at", "reason", "status", "external_id", "updated"]
        read_only_fields = ["id", "external_id", "updated"]


class VisitList(ListAPIView):
    resource = "visits"
    serializer_class = VisitSerializer
    filterset_class = VisitFilter
    queryset = Visit.objects.all()

    @extend_schema(responses={201: VisitSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        visit = visit_create(actor=actor_for(request), patient=data["patient"], starts_at=data.get("starts_at"),
                             reason=data.get("reason", ""), status=data.get("status", Visit.Status.BOOKED))  # fmt: skip
        return Response(self.get_serializer(visit).data, status=status.HTTP_201_CREATED)
