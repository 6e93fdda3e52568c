"""Reference lists a PMS maps its own codes against: species, breeds, stations, procedures."""

from typing import Any

from django.db import connection
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView, ListCreateAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from imaging.models import Modality, Procedure
from integrations.api.auth import actor_for
from integrations.api.errors import Conflict
from integrations.api.filters import BreedFilter, CrosswalkFilter
from integrations.api.strict import StrictTypes
from patients.models import Breed, CodeMapping, Species
from vetclinic.audit.services import audit_record


class SpeciesSerializer(serializers.ModelSerializer):
    class Meta:
        model = Species
        fields = ["id", "scheme", "code", "meaning", "name", "group", "active"]


class BreedSerializer(serializers.ModelSerializer):
    species: "serializers.SlugRelatedField[Species]" = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )

    class Meta:
        model = Breed
        fields = ["id", "species", "scheme", "code", "meaning", "name", "is_mixed", "active"]


class ModalitySerializer(serializers.ModelSerializer):
    class Meta:
        model = Modality
        fields = ["id", "ae_title", "modality_type", "station_name", "location", "active"]


class ProcedureSerializer(serializers.ModelSerializer):
    # (many=True makes a ManyRelatedField of SlugRelatedFields; the stubs do not say so.)
    species: "serializers.ManyRelatedField" = serializers.SlugRelatedField(  # type: ignore[assignment]
        slug_field="code", many=True, read_only=True
    )

    class Meta:
        model = Procedure
        fields = ["id", "code", "name", "modality_type", "body_part", "duration_minutes", "species",
                  "protocol_code", "protocol_scheme", "active"]  # fmt: skip


class ReferenceList(ListAPIView):
    resource = "reference"


class SpeciesList(ReferenceList):
    serializer_class = SpeciesSerializer
    queryset = Species.objects.order_by("id")


class BreedList(ReferenceList):
    """Breeds; ``?species=<SNOMED code>`` narrows to one species."""

    serializer_class = BreedSerializer
    filterset_class = BreedFilter
    queryset = Breed.objects.select_related("species").order_by("id")


class ModalityList(ReferenceList):
    serializer_class = ModalitySerializer
    queryset = Modality.objects.order_by("id")


class ProcedureList(ReferenceList):
    serializer_class = ProcedureSerializer
    queryset = Procedure.objects.prefetch_related("species").order_by("id")


class HealthSerializer(serializers.Serializer):
    status = serializers.CharField()
    database = serializers.CharField()


class Health(APIView):
    """For monitoring: no key needed; 200 while the database answers, else 503."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(responses={200: HealthSerializer, 503: HealthSerializer}, auth=[])
    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception:
            return Response({"status": "unavailable", "database": "down"}, status=503)
        return Response({"status": "ok", "database": "ok"})


class CodeMappingSerializer(StrictTypes, serializers.ModelSerializer):
    """A client's code -> ours: ``target`` is our species or breed code (SNOMED CT)."""

    target = serializers.CharField(max_length=32, write_only=True)
    maps_to = serializers.SerializerMethodField()
    # Service codes (kind "procedure") are mapped in the admin only, for HL7 OBR-4.
    kind = serializers.ChoiceField(choices=[CodeMapping.Kind.SPECIES, CodeMapping.Kind.BREED])

    class Meta:
        model = CodeMapping
        fields = ["id", "system", "kind", "external_code", "external_meaning", "target", "maps_to"]
        read_only_fields = ["id", "maps_to"]

    def get_validators(self) -> list[Any]:
        return []  # the one uniqueness rule is checked in validate(): a 409, not a 400

    # (A bare dict: drf-spectacular reads this hint, and the schema has an object of any properties.)
    def get_maps_to(self, mapping: CodeMapping) -> dict:
        target = mapping.species or mapping.breed
        assert target is not None  # (CodeMapping's CheckConstraint: a species or breed mapping names one)
        return {"code": target.code, "system": target.scheme, "name": target.name}

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        model = Species if data["kind"] == CodeMapping.Kind.SPECIES else Breed
        target = model.objects.filter(code=data.pop("target")).first()
        if target is None:
            raise serializers.ValidationError(
                {"target": [f"No {data['kind']} has our code {self.initial_data.get('target')}."]}
            )
        data["species" if model is Species else "breed"] = target
        if CodeMapping.objects.filter(
            system=data["system"], kind=data["kind"], external_code=data["external_code"]
        ).exists():
            raise Conflict(f"{data['system']} {data['kind']} {data['external_code']} is mapped already.")
        return data


class CrosswalkList(ListCreateAPIView):
    """The crosswalk HL7 and REST read species and breed codes through; a client registers its
    own codes here (reading it needs reference:read, adding reference:write)."""

    resource = "reference"
    serializer_class = CodeMappingSerializer
    filterset_class = CrosswalkFilter

    def get_queryset(self) -> QuerySet[CodeMapping]:
        found = CodeMapping.objects.exclude(kind=CodeMapping.Kind.PROCEDURE)
        return found.select_related("species", "breed").order_by("id")

    def perform_create(self, serializer: serializers.BaseSerializer[CodeMapping]) -> None:
        mapping = serializer.save()
        audit_record(actor=actor_for(self.request), instance=mapping, action="create",
                     changes={"mapping": [None, str(mapping)]})  # fmt: skip
