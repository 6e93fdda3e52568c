"""REST: POST /api/v1/studies/{id}/sends queues a send (study_send); GET /api/v1/sends/{id} is
its progress and per-instance results. Resource "sends" (integrations/api/auth.py)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from imaging.models import Series, Study
from integrations.api.auth import actor_for
from integrations.api.strict import StrictTypes
from sending.models import Destination, Send, SendResult
from sending.services import study_send


class SendRequestSerializer(StrictTypes, serializers.Serializer):
    destination = serializers.IntegerField(min_value=1, help_text="A destination's id")
    series = serializers.IntegerField(min_value=1, required=False, allow_null=True,
                                      help_text="Send this series only (its id); absent: the whole study")  # fmt: skip
    instances = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=10000,
        help_text="Send these instances only (SOP Instance UIDs)",
    )  # fmt: skip


class SendResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = SendResult
        fields = ["sop_instance_uid", "outcome", "status", "comment"]


class SendSerializer(serializers.ModelSerializer):
    destination = serializers.CharField(source="destination.name")
    destination_id = serializers.IntegerField()
    results = SendResultSerializer(many=True, read_only=True)

    class Meta:
        model = Send
        fields = ["id", "study", "destination", "destination_id", "series", "state", "attempts", "total",
                  "completed", "warning", "failed", "error", "created", "finished", "results"]  # fmt: skip


class StudySends(GenericAPIView):
    """Send the study (or one series, or some instances) to a destination: queued, 202."""

    resource = "sends"
    queryset = Study.objects.none()  # (the schema's path parameter: a study id)
    serializer_class = SendRequestSerializer

    @extend_schema(request=SendRequestSerializer, responses={202: SendSerializer})
    def post(self, request: Request, pk: int) -> Response:
        study = Study.objects.filter(pk=pk).first()
        if study is None:
            raise NotFound("No such study.")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        destination = Destination.objects.filter(pk=data["destination"], active=True).first()
        if destination is None:
            raise ValidationError({"destination": ["No active destination with this id."]})
        series = None
        if data.get("series"):
            series = Series.objects.filter(pk=data["series"], study=study).first()
            if series is None:
                raise ValidationError({"series": ["No series with this id in the study."]})
        try:
            send = study_send(study=study, destination=destination, series=series,
                              instances=data.get("instances") or None, actor=actor_for(request))  # fmt: skip
        except DjangoValidationError as refused:
            raise ValidationError(refused.message_dict) from refused
        return Response(SendSerializer(send).data, status=status.HTTP_202_ACCEPTED)


class SendDetail(GenericAPIView):
    """A send: its state, counts and each instance's result."""

    resource = "sends"
    queryset = Send.objects.none()
    serializer_class = SendSerializer

    def get(self, request: Request, pk: int) -> Response:
        send = Send.objects.select_related("destination").prefetch_related("results").filter(pk=pk).first()
        if send is None:
            raise NotFound("No such send.")
        return Response(SendSerializer(send).data)
