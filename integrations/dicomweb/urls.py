"""/dicomweb/...: the PS3.18 resources, each URL as the standard spells it (no trailing slash)."""

from django.urls import path

from integrations.dicomweb import wado

app_name = "dicomweb"

STUDY = "studies/<str:study>"
SERIES = f"{STUDY}/series/<str:series>"
INSTANCE = f"{SERIES}/instances/<str:instance>"

urlpatterns: list = [
    # QIDO-RS (qido.py)
    # WADO-RS (wado.py)
    path(STUDY, wado.InstancesRetrieve.as_view(), name="study_retrieve"),
    path(f"{STUDY}/metadata", wado.MetadataRetrieve.as_view(), name="study_metadata"),
    path(SERIES, wado.InstancesRetrieve.as_view(), name="series_retrieve"),
    path(f"{SERIES}/metadata", wado.MetadataRetrieve.as_view(), name="series_metadata"),
    path(INSTANCE, wado.InstancesRetrieve.as_view(), name="instance_retrieve"),
    path(f"{INSTANCE}/metadata", wado.MetadataRetrieve.as_view(), name="instance_metadata"),
    path(f"{INSTANCE}/frames/<str:frames>", wado.FramesRetrieve.as_view(), name="instance_frames"),
    path(f"{INSTANCE}/bulkdata/<path:attribute>", wado.BulkDataRetrieve.as_view(), name="instance_bulkdata"),
    # STOW-RS (stow.py)
]
