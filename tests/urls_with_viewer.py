"""The site's URLs and a route named as the viewer's (issue 16, built on another branch), for the
reading list's test that a row opens the viewer once it exists."""

from django.http import HttpResponse
from django.urls import include, path


def viewer_standin(request, pk):
    return HttpResponse(f"viewer of {pk}")


urlpatterns = [
    path("", include("vetclinic.urls")),
    path("studies/<int:pk>/view", viewer_standin, name="study_view"),
]
