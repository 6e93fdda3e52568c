"""A study's annotations and measurements over REST: the viewer saves and loads them here (with
the staff session), and a PMS or teleradiology service may read them (with an API key and the
``annotations`` scope). Thin over imaging/annotations/services.py and sr.py.

Saving is optimistic: PUT names the ``version`` it edited; when someone saved since, the answer
is 409 naming that version (``current``), and nothing is saved.
"""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from imaging.annotations import services
from imaging.annotations.sr import annotations_export
from imaging.ingest.receive import ObjectRefused
from imaging.models import AnnotationVersion, Study
from integrations.api.auth import actor_for
from integrations.api.errors import error_body
from integrations.api.strict import StrictTypes


class VersionSerializer(serializers.ModelSerializer):
    """One saved version: who saved it, when, and what (the viewer's Cornerstone3D annotations,
    each with its result in ``data.vetpacs``, and the key images)."""

    version = serializers.IntegerField(source="number")
    study = serializers.IntegerField(source="annotation_set.study_id")
    saved_at = serializers.DateTimeField(allow_null=True, help_text="null: nothing saved yet (version 0)")
    annotations = serializers.ListField(child=serializers.DictField())
    key_images = serializers.ListField(child=serializers.DictField())
    authors = serializers.DictField(
        child=serializers.CharField(), help_text="Who drew each annotation, by annotationUID"
    )

    class Meta:
        model = AnnotationVersion
        fields = ["study", "version", "saved_by_name", "saved_at", "annotations", "key_images", "authors",
                  "sr_sop_instance_uid", "ko_sop_instance_uid", "exported_at"]  # fmt: skip


class VersionSummarySerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="number")
    annotations = serializers.SerializerMethodField()
    key_images = serializers.SerializerMethodField()

    class Meta:
        model = AnnotationVersion
        fields = ["version", "saved_by_name", "saved_at", "annotations", "key_images", "sr_sop_instance_uid",
                  "exported_at"]  # fmt: skip

    def get_annotations(self, saved: AnnotationVersion) -> int:
        """How many annotations it has."""
        return len(saved.annotations)

    def get_key_images(self, saved: AnnotationVersion) -> int:
        return len(saved.key_images)


class SaveSerializer(StrictTypes, serializers.Serializer):
    version = serializers.IntegerField(
        min_value=0,
        help_text="The version you edited (0 before the first save); a newer one saved since is a 409.",
    )
    annotations = serializers.ListField(
        child=serializers.DictField(),
        help_text="Cornerstone3D annotations as they serialize (annotation.state), each with "
        "metadata.referencedImageId (a wadors image id of this study) and data.vetpacs "
        "{kind, label, value, unit (UCUM), text, reference}.",
    )
    key_images = serializers.ListField(
        child=serializers.DictField(), required=False,
        help_text="[{seriesUid, sopInstanceUid, frame, imageId}]: the study's key images.",
    )  # fmt: skip


class KeyImageSerializer(StrictTypes, serializers.Serializer):
    version = serializers.IntegerField(min_value=0)
    key_image = serializers.DictField(help_text="{seriesUid, sopInstanceUid, frame, imageId}")
    flagged = serializers.BooleanField()


class ExportSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    sr_sop_instance_uid = serializers.CharField(help_text="The measurement SR (empty: no measured value)")
    ko_sop_instance_uid = serializers.CharField(help_text="The key object selection (empty: no key image)")
    sr_series_uid = serializers.CharField()
    ko_series_uid = serializers.CharField()
    queued = serializers.IntegerField(
        help_text="Objects stored now and queued for indexing (0: exported before)"
    )


class HistorySerializer(serializers.Serializer):
    study_id = serializers.IntegerField()
    study_date = serializers.DateField(allow_null=True)
    kind = serializers.CharField(help_text="vhs or vlas")
    label = serializers.CharField()  # type: ignore[assignment]  # (Field.label, the DRF stubs' str)
    value = serializers.FloatField()
    unit = serializers.CharField(help_text="UCUM")
    text = serializers.CharField()
    version = serializers.IntegerField(help_text="The annotations' version it comes from")
    this_study = serializers.BooleanField()


def _study(pk: int) -> Study:
    study = Study.objects.select_related("patient").filter(pk=pk).first()
    if study is None:
        raise NotFound("No such study.")
    return study


def _empty(study: Study) -> dict[str, Any]:
    return {"study": study.pk, "version": 0, "saved_by_name": "", "saved_at": None, "annotations": [],
            "key_images": [], "authors": {}, "sr_sop_instance_uid": "", "ko_sop_instance_uid": "",
            "exported_at": None}  # fmt: skip


def _saved(request: Request, study: Study, save: Any) -> Response:
    try:
        saved = save()
    except services.StaleVersion as stale:
        body = error_body(409, stale.message_dict["version"][0], {"version": stale.message_dict["version"]})
        body["current"] = VersionSummarySerializer(stale.current).data
        return Response(body, status=status.HTTP_409_CONFLICT)
    return Response(VersionSerializer(saved).data)


class StudyAnnotations(GenericAPIView):
    """The study's current annotations; PUT saves a new version of them."""

    resource = "annotations"
    queryset = Study.objects.none()  # (the schema's path parameter: a study id)
    serializer_class = VersionSerializer

    def get(self, request: Request, pk: int) -> Response:
        study = _study(pk)
        current = services.annotations_current(study=study)
        return Response(VersionSerializer(current).data if current else _empty(study))

    @extend_schema(request=SaveSerializer, responses={200: VersionSerializer})
    def put(self, request: Request, pk: int) -> Response:
        """Save the annotations as a new version. 409 (naming the newer version in ``current``)
        when ``version`` is not the current one; the same content again saves nothing."""
        study = _study(pk)
        serializer = SaveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return _saved(request, study, lambda: services.annotation_save(
            actor=actor_for(request), study=study, version=data["version"], annotations=data["annotations"],
            key_images=data.get("key_images", []),
        ))  # fmt: skip


class StudyAnnotationVersions(GenericAPIView):
    """Every saved version of the study's annotations, newest first (the counts, not the marks)."""

    resource = "annotations"
    queryset = Study.objects.none()  # (the schema's path parameter: a study id)
    serializer_class = VersionSummarySerializer
    pagination_class = None

    @extend_schema(responses={200: VersionSummarySerializer(many=True)})
    def get(self, request: Request, pk: int) -> Response:
        versions = services.annotation_versions(study=_study(pk))
        return Response(VersionSummarySerializer(versions, many=True).data)


class StudyKeyImage(GenericAPIView):
    """Flag (or unflag) one image of the study as a key image: a new version."""

    resource = "annotations"
    queryset = Study.objects.none()  # (the schema's path parameter: a study id)
    serializer_class = KeyImageSerializer

    @extend_schema(request=KeyImageSerializer, responses={200: VersionSerializer})
    def post(self, request: Request, pk: int) -> Response:
        study = _study(pk)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return _saved(request, study, lambda: services.key_image_set(
            actor=actor_for(request), study=study, version=data["version"], key_image=data["key_image"],
            flagged=data["flagged"],
        ))  # fmt: skip


class StudyAnnotationExport(GenericAPIView):
    """Put the current version into the study as DICOM: a TID 1500 measurement SR and a key
    object selection, stored and queued for indexing like a C-STORE (202: Q/R and DICOMweb
    return them once indexed). A version is exported once; again returns the same objects."""

    resource = "annotations"
    queryset = Study.objects.none()  # (the schema's path parameter: a study id)
    serializer_class = ExportSerializer

    @extend_schema(request=None, responses={202: ExportSerializer, 200: ExportSerializer})
    def post(self, request: Request, pk: int) -> Response:
        try:
            export = annotations_export(actor=actor_for(request), study=_study(pk))
        except ObjectRefused as refused:  # storage failed (a full disk): nothing was recorded
            return Response(
                error_body(503, f"Not exported: {refused.detail}", code="unavailable"), status=503
            )
        body = {
            "version": export.version, "sr_sop_instance_uid": export.sr_sop_instance_uid,
            "ko_sop_instance_uid": export.ko_sop_instance_uid, "sr_series_uid": export.sr_series_uid,
            "ko_series_uid": export.ko_series_uid, "queued": len(export.messages),
        }  # fmt: skip
        return Response(body, status=status.HTTP_202_ACCEPTED if export.messages else status.HTTP_200_OK)


class StudyMeasurementHistory(GenericAPIView):
    """The animal's VHS and VLAS over time: each of its studies' current values (this study's
    among them), found by the linked record and its merged aliases, oldest first."""

    resource = "annotations"
    queryset = Study.objects.none()  # (the schema's path parameter: a study id)
    serializer_class = HistorySerializer
    pagination_class = None

    @extend_schema(responses={200: HistorySerializer(many=True)})
    def get(self, request: Request, pk: int) -> Response:
        values = services.measurement_history(study=_study(pk))
        return Response(HistorySerializer(values, many=True).data)
