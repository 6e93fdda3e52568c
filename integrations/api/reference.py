"""Reference lists a PMS maps its own codes against: species, breeds, stations, procedures."""
from django.db import connection
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from imaging.models import Modality, Procedure
from patients.models import Breed, Species


class SpeciesSerializer(serializers.ModelSerializer):
    class Meta:
        model = Species
        fields = ["id", "scheme", "code", "meaning", "name", "group", "active"]


class BreedSerializer(serializers.ModelSerializer):
    species = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Breed
        fields = ["id", "species", "scheme", "code", "meaning", "name", "is_mixed", "active"]


class ModalitySerializer(serializers.ModelSerializer):
    class Meta:
        model = Modality
        fields = ["id", "ae_title", "modality_type", "station_name", "location", "active"]


class ProcedureSerializer(serializers.ModelSerializer):
    species = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)

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

    def get_queryset(self):
        breeds = Breed.objects.select_related("species").order_by("id")
        species = self.request.query_params.get("species")
        return breeds.filter(species__code=species) if species else breeds


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
    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception:
            return Response({"status": "unavailable", "database": "down"}, status=503)
        return Response({"status": "ok", "database": "ok"})
