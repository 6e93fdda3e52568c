"""/dicomweb/...: the PS3.18 resources, each URL as the standard spells it (no trailing slash)."""

from django.urls import path

from integrations.dicomweb import qido, stow, wado
from integrations.dicomweb.base import by_method
from integrations.dicomweb.rendered import RenderedView, ThumbnailView

app_name = "dicomweb"

STUDY = "studies/<str:study>"
SERIES = f"{STUDY}/series/<str:series>"
INSTANCE = f"{SERIES}/instances/<str:instance>"
FRAMES = f"{INSTANCE}/frames/<str:frames>"

urlpatterns: list = [
    # QIDO-RS (qido.py), PS3.18 10.6. /studies and /studies/{study} are also STOW-RS's (POST):
    # one pattern each, by_method dispatching (base.py).
    path(
        "studies", by_method(GET=qido.StudySearch.as_view(), POST=stow.StudiesStore.as_view()), name="studies"
    ),
    path("series", qido.SeriesSearch.as_view(), name="series"),
    path("instances", qido.InstanceSearch.as_view(), name="instances"),
    path(f"{STUDY}/series", qido.SeriesSearch.as_view(), name="study-series"),
    path(f"{STUDY}/instances", qido.InstanceSearch.as_view(), name="study-instances"),
    path(f"{SERIES}/instances", qido.InstanceSearch.as_view(), name="series-instances"),
    # WADO-RS (wado.py): PS3.18 10.4
    path(
        STUDY, by_method(GET=wado.InstancesRetrieve.as_view(), POST=stow.StudiesStore.as_view()), name="study"
    ),
    path(f"{STUDY}/metadata", wado.MetadataRetrieve.as_view(), name="study_metadata"),
    path(SERIES, wado.InstancesRetrieve.as_view(), name="series_retrieve"),
    path(f"{SERIES}/metadata", wado.MetadataRetrieve.as_view(), name="series_metadata"),
    path(INSTANCE, wado.InstancesRetrieve.as_view(), name="instance_retrieve"),
    path(f"{INSTANCE}/metadata", wado.MetadataRetrieve.as_view(), name="instance_metadata"),
    path(FRAMES, wado.FramesRetrieve.as_view(), name="instance_frames"),
    path(f"{INSTANCE}/bulkdata/<path:attribute>", wado.BulkDataRetrieve.as_view(), name="instance_bulkdata"),
    # WADO-RS rendered (rendered.py): PS3.18 10.4.1.1.3 Rendered and 10.4.1.1.4 Thumbnail resources
    path(f"{STUDY}/rendered", RenderedView.as_view(), name="study_rendered"),
    path(f"{SERIES}/rendered", RenderedView.as_view(), name="series_rendered"),
    path(f"{INSTANCE}/rendered", RenderedView.as_view(), name="instance_rendered"),
    path(f"{FRAMES}/rendered", RenderedView.as_view(), name="frames_rendered"),
    path(f"{STUDY}/thumbnail", ThumbnailView.as_view(), name="study_thumbnail"),
    path(f"{SERIES}/thumbnail", ThumbnailView.as_view(), name="series_thumbnail"),
    path(f"{INSTANCE}/thumbnail", ThumbnailView.as_view(), name="instance_thumbnail"),
    path(f"{FRAMES}/thumbnail", ThumbnailView.as_view(), name="frames_thumbnail"),
]
