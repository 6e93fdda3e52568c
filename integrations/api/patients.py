"""Owners and patients over REST: thin views over patients/services.py, as the UI and HL7 use.

A client upserts by its own ids (``PUT /api/v1/patients/external/{id}``: the id lives in the
client's namespace ``api:<client name>``); species and breeds come as our codes or the client's
own codes through the crosswalk.
"""

from typing import Any, TypeVar

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from integrations.api.auth import ClientUser, actor_for
from integrations.api.filters import OwnerFilter, PatientFilter, filter_values
from integrations.api.pagination import PageQuery, prefetched
from integrations.api.rows import (
    PATIENT_FIELDS,
    ExternalId,
    PatientBody,
    Row,
    fields_check,
    patient_rows,
    patients_json,
)
from integrations.api.selectors import patient_pages, patients_queryset
from integrations.api.strict import StrictTypes
from integrations.api.sync import Versioned, etag, idempotent, if_match_check
from patients.models import Breed, Owner, Ownership, Patient, Species
from patients.selectors import coded_breed, coded_species
from patients.services import owner_upsert, ownership_set, patient_upsert
from vetclinic.transactions import retried


def external_system(request: Request) -> str:
    """The namespace of the calling client's own ids."""
    if not isinstance(request.user, ClientUser):
        raise ValidationError(
            {"external_id": ["Only an API client has external ids; staff use the record's id."]}
        )
    return f"api:{request.user.client.name}"


class CodeField(StrictTypes, serializers.Serializer):
    """A coded value: ours (SNOMED CT, ``system`` "SCT") or the client's, through the crosswalk.
    Shown as ours, with its name."""

    code = serializers.CharField(max_length=64)
    system = serializers.CharField(max_length=64, default="SCT")
    name = serializers.CharField(read_only=True)

    def validate(self, data: dict[str, str]) -> dict[str, str]:
        # DRF leaves defaults out of a partial update (PATCH), and lets required fields be
        # missing there: a code is needed all the same; without a system, ours.
        if "code" not in data:
            raise ValidationError({"code": ["This field is required."]})
        return {"system": "SCT", **data}


class ExternalIdSerializer(serializers.Serializer):
    """A record's id in another system (``api:<client name>`` for an API client's own ids)."""

    system = serializers.CharField(read_only=True)
    value = serializers.CharField(read_only=True)


class OwnerSerializer(StrictTypes, serializers.ModelSerializer):
    external_ids = serializers.SerializerMethodField()

    class Meta:
        model = Owner
        fields = [
            "id",
            "kind",
            "title",
            "family_name",
            "given_name",
            "organisation_name",
            "phone",
            "mobile",
            "email",
            "address_line1",
            "address_line2",
            "city",
            "postcode",
            "country",
            "notes",
            "external_ids",
            "updated",
        ]
        read_only_fields = ["id", "external_ids", "updated"]

    @extend_schema_field(ExternalIdSerializer(many=True))
    def get_external_ids(self, owner: Owner) -> list[ExternalId]:
        ids = prefetched(owner, "external_ids_rows", "external_ids")
        return [{"system": e.system, "value": e.value} for e in ids]

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:  # (the owner's fields, each its own type)
        if data.get("kind", getattr(self.instance, "kind", "person")) == "person" and not (
            data.get("family_name") or getattr(self.instance, "family_name", "")
        ):
            raise ValidationError({"family_name": ["A person needs a family name."]})
        return data


class OwnershipListSerializer(serializers.ListSerializer):
    def run_child_validation(self, data: Any) -> Any:  # (an item as sent; its fields, validated)
        """Each owner item is whole, in a PATCH too: DRF skips every default and every required
        check of a nested item when its root is partial, which let ``{"owners": [{}]}`` through
        to the service without an owner or a role."""
        item = OwnershipSerializer(data=data)  # a root of its own, never partial
        if not item.is_valid():
            raise serializers.ValidationError(item.errors)
        return item.validated_data


class OwnershipSerializer(StrictTypes, serializers.Serializer):
    owner = serializers.PrimaryKeyRelatedField(queryset=Owner.objects.all())
    role = serializers.ChoiceField(choices=Ownership.Role.choices, default=Ownership.Role.OWNER)
    primary = serializers.BooleanField(required=False, source="is_primary")

    class Meta:
        list_serializer_class = OwnershipListSerializer


class PatientSerializer(StrictTypes, serializers.ModelSerializer):
    # Written as a code (ours or the client's), shown as ours with its name (rows.py).
    species = CodeField()
    breed = CodeField(required=False, allow_null=True)
    # Written: a new measurement (null or left out: none); shown: the newest one, null if none.
    weight_kg = serializers.DecimalField(
        max_digits=7, decimal_places=3, required=False, allow_null=True, min_value=0
    )
    owners = OwnershipSerializer(many=True, required=False, source="ownerships")
    external_ids = ExternalIdSerializer(many=True, read_only=True)

    class Meta:
        model = Patient
        # In the order rows.py writes them (fields_check, below).
        fields = ["id", "patient_id", "name", "breed_text", "sex", "neutered", "birth_date", "birth_date_estimated",
                  "colour", "microchip", "deceased", "deceased_on", "notes", "owners", "updated", "species", "breed",
                  "weight_kg", "external_ids"]  # fmt: skip
        read_only_fields = ["id", "patient_id", "updated"]

    # (A PatientBody: a dict with its keys named, where the stubs say dict[str, Any].)
    def to_representation(self, patient: Patient) -> PatientBody:  # type: ignore[override]
        # The one way an animal is shown (rows.py), as in the lists.
        return patients_json(patient_rows(Patient.objects.filter(pk=patient.pk)))[0]

    def validate_species(self, value: dict[str, str]) -> Species:
        species = coded_species(system=value["system"], code=value["code"])
        if species is None:
            raise ValidationError(
                f"Unknown species code {value['code']} in {value['system']}; map it in the crosswalk."
            )
        return species

    def validate_breed(self, value: dict[str, str] | None) -> Breed | None:
        if value is None:
            return None
        breed = coded_breed(system=value["system"], code=value["code"])
        if breed is None:
            raise ValidationError(
                f"Unknown breed code {value['code']} in {value['system']}; map it in the crosswalk."
            )
        return breed


fields_check(PatientSerializer, PATIENT_FIELDS)  # rows.py shows what the serializer declares


# A record the API saves through a service that may run again (retried).
Record = TypeVar("Record", Patient, Owner)


def _afresh(record: Record | None) -> Record | None:
    """The record as the database has it now (for a save that may run again: vetclinic/transactions.py
    ``retried``), or None."""
    return None if record is None else type(record).objects.get(pk=record.pk)


def _patient_save(
    request: Request,
    serializer: serializers.BaseSerializer[Any],
    *,
    patient: Patient | None = None,
    external: tuple[str, str] | None = None,
) -> Patient:
    """The animal and its owners in one transaction: if linking an owner fails, the animal is
    neither created nor changed (a client retrying the request finds what it left)."""
    data = dict(serializer.validated_data)
    ownerships = data.pop("ownerships", None)
    weight = data.pop("weight_kg", None)
    actor = actor_for(request)

    def save() -> Patient:
        saved = patient_upsert(
            actor=actor, fields=data, patient=_afresh(patient), external=external, weight_kg=weight
        )
        for link in ownerships or []:
            ownership_set(
                actor=actor,
                patient=saved,
                owner=link["owner"],
                role=link["role"],
                primary=link.get("is_primary"),
            )
        return saved

    patient = retried(save)
    return patients_queryset().get(pk=patient.pk)


def _with_etag(response: Response, instance: Versioned) -> Response:
    response["ETag"] = etag(instance)
    return response


class PatientList(ListAPIView):
    resource = "patients"
    serializer_class = PatientSerializer
    filterset_class = PatientFilter  # (cleaned here, applied in the compiled page: filters.py)

    # (A PageQuery stands in for the queryset: the cursor pages through it, pagination.py.)
    def get_queryset(self) -> PageQuery | QuerySet[Patient]:  # type: ignore[override]
        filters = filter_values(PatientFilter, self.request)
        # A search matches in no order of its own: the cursor pages through the matches by id.
        # (Through the first 500 by name, PostgreSQL sorted every match of a common word before a
        # page could start, ~35 ms at 100,000 animals, and a client could never page past the 500th.)
        if filters.get("search") == ():  # text with no word in it
            return Patient.objects.none()
        return PageQuery(patient_pages(words=filters.get("search")), Patient, filters)

    def list(self, request: Request) -> Response:
        # The page as plain rows, not serializers; PatientSerializer still describes it.
        # (A PageQuery, not a QuerySet as DRF's hints have it: its page is rows.)
        rows: list[Row] | None = self.paginate_queryset(self.get_queryset())  # type: ignore[arg-type]
        assert rows is not None  # (None only for a view without a paginator; every list has Cursor)
        return self.get_paginated_response(patients_json(rows))

    @extend_schema(responses={201: PatientSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient = _patient_save(request, serializer)
        return _with_etag(
            Response(self.get_serializer(patient).data, status=status.HTTP_201_CREATED), patient
        )


class PatientDetail(GenericAPIView):
    """One animal; PATCH changes what it names, ``If-Match`` guards against lost updates."""

    resource = "patients"
    serializer_class = PatientSerializer

    def get_object(self) -> Patient:
        patient = patients_queryset().filter(pk=self.kwargs["pk"]).first()
        if patient is None:
            raise NotFound("No such patient.")
        return patient

    def get(self, request: Request, pk: int) -> Response:
        patient = self.get_object()
        return _with_etag(Response(self.get_serializer(patient).data), patient)

    def patch(self, request: Request, pk: int) -> Response:
        patient = self.get_object()
        if_match_check(request, patient)
        serializer = self.get_serializer(patient, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        patient = _patient_save(request, serializer, patient=patient)
        return _with_etag(Response(self.get_serializer(patient).data), patient)


class PatientExternal(GenericAPIView):
    """Upsert by the client's own id: created the first time, updated after (200 or 201)."""

    resource = "patients"
    serializer_class = PatientSerializer

    def _find(self, external_id: str) -> tuple[str, Patient | None]:
        system = external_system(self.request)
        found = (
            patients_queryset().filter(external_ids__system=system, external_ids__value=external_id).first()
        )
        return system, found

    def get(self, request: Request, external_id: str) -> Response:
        _, patient = self._find(external_id)
        if patient is None:
            raise NotFound(f"No patient with your id {external_id}.")
        return _with_etag(Response(self.get_serializer(patient).data), patient)

    @extend_schema(responses={200: PatientSerializer, 201: PatientSerializer})
    def put(self, request: Request, external_id: str) -> Response:
        system, patient = self._find(external_id)
        if patient is not None:
            if_match_check(request, patient)
        serializer = self.get_serializer(patient, data=request.data, partial=patient is not None)
        serializer.is_valid(raise_exception=True)
        saved = _patient_save(request, serializer, patient=patient, external=(system, external_id))
        code = status.HTTP_200_OK if patient is not None else status.HTTP_201_CREATED
        return _with_etag(Response(self.get_serializer(saved).data, status=code), saved)


def owners_queryset() -> QuerySet[Owner]:
    return Owner.objects.prefetch_related(Prefetch("external_ids", to_attr="external_ids_rows"))


class OwnerList(ListAPIView):
    resource = "owners"
    serializer_class = OwnerSerializer
    filterset_class = OwnerFilter
    queryset = owners_queryset()

    @extend_schema(responses={201: OwnerSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        owner = retried(lambda: owner_upsert(actor=actor_for(request), fields=serializer.validated_data))
        owner = owners_queryset().get(pk=owner.pk)
        return _with_etag(Response(self.get_serializer(owner).data, status=status.HTTP_201_CREATED), owner)


class OwnerDetail(GenericAPIView):
    resource = "owners"
    serializer_class = OwnerSerializer

    def get_object(self) -> Owner:
        owner = owners_queryset().filter(pk=self.kwargs["pk"]).first()
        if owner is None:
            raise NotFound("No such owner.")
        return owner

    def get(self, request: Request, pk: int) -> Response:
        owner = self.get_object()
        return _with_etag(Response(self.get_serializer(owner).data), owner)

    def patch(self, request: Request, pk: int) -> Response:
        owner = self.get_object()
        if_match_check(request, owner)
        serializer = self.get_serializer(owner, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        retried(
            lambda: owner_upsert(
                actor=actor_for(request), fields=serializer.validated_data, owner=_afresh(owner)
            )
        )
        owner = owners_queryset().get(pk=owner.pk)
        return _with_etag(Response(self.get_serializer(owner).data), owner)


class OwnerExternal(GenericAPIView):
    resource = "owners"
    serializer_class = OwnerSerializer

    @extend_schema(responses={200: OwnerSerializer, 201: OwnerSerializer})
    def put(self, request: Request, external_id: str) -> Response:
        system = external_system(request)
        owner = owners_queryset().filter(external_ids__system=system, external_ids__value=external_id).first()
        if owner is not None:
            if_match_check(request, owner)
        serializer = self.get_serializer(owner, data=request.data, partial=owner is not None)
        serializer.is_valid(raise_exception=True)
        saved = retried(
            lambda: owner_upsert(
                actor=actor_for(request),
                fields=serializer.validated_data,
                owner=_afresh(owner),
                external=(system, external_id),
            )
        )
        saved = owners_queryset().get(pk=saved.pk)
        code = status.HTTP_200_OK if owner is not None else status.HTTP_201_CREATED
        return _with_etag(Response(self.get_serializer(saved).data, status=code), saved)
