"""/dicomweb/...: the PS3.18 resources, each URL as the standard spells it (no trailing slash)."""

from django.urls import path

from integrations.dicomweb import stow
from integrations.dicomweb.base import by_method
from integrations.dicomweb.rendered import RenderedView, ThumbnailView

app_name = "dicomweb"

urlpatterns: list = [
    # QIDO-RS (qido.py)
    # WADO-RS (wado.py)
    # STOW-RS (stow.py). /studies and /studies/{study} are QIDO-RS's and WADO-RS's too (GET):
    # one pattern each, by_method dispatching (base.py).
    path("studies", by_method(POST=stow.StudiesStore.as_view()), name="studies"),
    path("studies/<str:study>", by_method(POST=stow.StudiesStore.as_view()), name="study"),
    # WADO-RS rendered (rendered.py): PS3.18 10.4.1.1.3 Rendered and 10.4.1.1.4 Thumbnail resources
    path("studies/<str:study>/rendered", RenderedView.as_view(), name="study_rendered"),
    path("studies/<str:study>/series/<str:series>/rendered", RenderedView.as_view(), name="series_rendered"),
    path(
        "studies/<str:study>/series/<str:series>/instances/<str:instance>/rendered",
        RenderedView.as_view(),
        name="instance_rendered",
    ),  # fmt: skip
    path(
        "studies/<str:study>/series/<str:series>/instances/<str:instance>/frames/<str:frames>/rendered",
        RenderedView.as_view(),
        name="frames_rendered",
    ),  # fmt: skip
    path("studies/<str:study>/thumbnail", ThumbnailView.as_view(), name="study_thumbnail"),
    path(
        "studies/<str:study>/series/<str:series>/thumbnail", ThumbnailView.as_view(), name="series_thumbnail"
    ),
    path(
        "studies/<str:study>/series/<str:series>/instances/<str:instance>/thumbnail",
        ThumbnailView.as_view(),
        name="instance_thumbnail",
    ),  # fmt: skip
    path(
        "studies/<str:study>/series/<str:series>/instances/<str:instance>/frames/<str:frames>/thumbnail",
        ThumbnailView.as_view(),
        name="frames_thumbnail",
    ),  # fmt: skip
]
