"""Share links and consults over REST (``studies`` scope): a PMS or a script makes a link or a
consult request for a study and reads a consult's status and reports. Thin over services.py;
the raw link (``url``) is in the creating answer only."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from imaging.models import Study
from integrations.api.auth import actor_for
from integrations.api.strict import StrictTypes
from sending.models import Destination
from sharing import services
from sharing.models import ConsultReport, ConsultRequest, ShareLink


class ShareLinkSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()
    priors: serializers.PrimaryKeyRelatedField[Study] = serializers.PrimaryKeyRelatedField(
        many=True, read_only=True
    )

    class Meta:
        model = ShareLink
        fields = ["id", "study", "kind", "state", "expires_at", "revoked_at", "created_at", "created_by_name",
                  "opened_count", "last_opened_at", "priors", "note"]  # fmt: skip

    def get_state(self, link: ShareLink) -> str:
        """active, expired or revoked"""
        return link.state()


class CreatedShareLinkSerializer(ShareLinkSerializer):
    url = serializers.CharField(help_text="The link itself: shown this once (only its hash is kept)")

    class Meta(ShareLinkSerializer.Meta):
        fields = [*ShareLinkSerializer.Meta.fields, "url"]


class ShareLinkCreateSerializer(StrictTypes, serializers.Serializer):
    kind = serializers.ChoiceField(choices=ShareLink.Kind.values)
    expires_at = serializers.DateTimeField(required=False, help_text="Default: in SHARE_LINK_DAYS (7) days")
    access_code = serializers.CharField(required=False, allow_blank=True, max_length=64)
    note = serializers.CharField(required=False, allow_blank=True, max_length=5000, help_text="For the owner")
    priors = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=50,
        help_text="Ids of the same animal's other studies",
    )  # fmt: skip


class ConsultReportSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConsultReport
        fields = ["id", "author_name", "text", "source", "status", "amends", "created_at", "seen_at"]


class ConsultSerializer(serializers.ModelSerializer):
    reports = ConsultReportSerializer(many=True, read_only=True)
    sent_to: serializers.SlugRelatedField[Destination] = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True,
        help_text="The registered destination the study was sent to, if any",
    )  # fmt: skip
    placer_number = serializers.CharField(
        read_only=True,
        help_text="What an answer quotes: HL7 ORC-2/OBR-2, or a DICOM SR's Placer Order Number",
    )
    priors: serializers.PrimaryKeyRelatedField[Study] = serializers.PrimaryKeyRelatedField(
        many=True, read_only=True
    )

    class Meta:
        model = ConsultRequest
        fields = ["id", "study", "status", "destination", "sent_to", "placer_number", "clinical_question", "history", "weight_kg",
                  "key_images", "priors", "link", "requested_by_name", "created_at", "reported_at", "reports"]  # fmt: skip


class CreatedConsultSerializer(ConsultSerializer):
    url = serializers.CharField(help_text="The specialist's link: shown this once")

    class Meta(ConsultSerializer.Meta):
        fields = [*ConsultSerializer.Meta.fields, "url"]


class ConsultCreateSerializer(StrictTypes, serializers.Serializer):
    destination = serializers.CharField(max_length=200, required=False, allow_blank=True)
    sent_to = serializers.SlugRelatedField(
        slug_field="name", queryset=Destination.objects.filter(active=True), required=False, allow_null=True,
        help_text="A registered destination (by name): the study and the priors are sent there",
    )  # fmt: skip
    clinical_question = serializers.CharField(max_length=10000)
    history = serializers.CharField(required=False, allow_blank=True, max_length=10000)
    weight_kg = serializers.DecimalField(required=False, allow_null=True, max_digits=7, decimal_places=3)
    priors = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=50,
        help_text="Ids of the same animal's other studies",
    )  # fmt: skip
    expires_at = serializers.DateTimeField(required=False)
    access_code = serializers.CharField(required=False, allow_blank=True, max_length=64)


def _study(pk: int) -> Study:
    study = Study.objects.select_related("patient").filter(pk=pk).first()
    if study is None:
        raise NotFound("No such study.")
    return study


def _values(given: serializers.Serializer) -> dict[str, Any]:
    """The validated body, ``priors`` as the studies they name (an unknown id: a 400 naming it)."""
    values: dict[str, Any] = dict(given.validated_data)
    ids = values.pop("priors", [])
    priors = list(Study.objects.filter(pk__in=ids))
    if len(priors) != len(set(ids)):
        raise ValidationError({"priors": ["No study with one of these ids."]})
    values["priors"] = priors
    return values


def _url(request: Request, raw: str) -> str:
    from django.urls import reverse

    return request.build_absolute_uri(reverse("share_open", args=[raw]))


class StudyShareLinks(GenericAPIView):
    """A study's share links (GET) and a new one (POST; its ``url`` is shown this once)."""

    resource = "studies"
    queryset = Study.objects.none()
    serializer_class = ShareLinkSerializer
    pagination_class = None

    @extend_schema(responses={200: ShareLinkSerializer(many=True)})
    def get(self, request: Request, pk: int) -> Response:
        links = ShareLink.objects.filter(study=_study(pk)).prefetch_related("priors")
        return Response(ShareLinkSerializer(links, many=True).data)

    @extend_schema(request=ShareLinkCreateSerializer, responses={201: CreatedShareLinkSerializer})
    def post(self, request: Request, pk: int) -> Response:
        study = _study(pk)
        given = ShareLinkCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        values = _values(given)
        link, raw = services.link_create(actor=actor_for(request), study=study, **values)
        body = {**ShareLinkSerializer(link).data, "url": _url(request, raw)}
        return Response(body, status=status.HTTP_201_CREATED)


class StudyConsults(GenericAPIView):
    """A study's consult requests (GET) and a new one (POST), answered through the specialist's
    link it makes (``url``, shown this once)."""

    resource = "studies"
    queryset = Study.objects.none()
    serializer_class = ConsultSerializer
    pagination_class = None

    @extend_schema(responses={200: ConsultSerializer(many=True)})
    def get(self, request: Request, pk: int) -> Response:
        consults = ConsultRequest.objects.filter(study=_study(pk)).prefetch_related("reports", "priors")
        return Response(ConsultSerializer(consults, many=True).data)

    @extend_schema(request=ConsultCreateSerializer, responses={201: CreatedConsultSerializer})
    def post(self, request: Request, pk: int) -> Response:
        study = _study(pk)
        given = ConsultCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        values = _values(given)
        consult, raw = services.consult_create(actor=actor_for(request), study=study, **values)
        body = {**ConsultSerializer(consult).data, "url": _url(request, raw)}
        return Response(body, status=status.HTTP_201_CREATED)


class ConsultDetail(GenericAPIView):
    """One consult request: its status and the reports filed on it."""

    resource = "studies"
    queryset = ConsultRequest.objects.none()
    serializer_class = ConsultSerializer

    def get(self, request: Request, pk: int) -> Response:
        consult = ConsultRequest.objects.prefetch_related("reports", "priors").filter(pk=pk).first()
        if consult is None:
            raise NotFound("No such consult.")
        return Response(ConsultSerializer(consult).data)
