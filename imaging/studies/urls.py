from django.urls import path

from imaging.studies import views

urlpatterns = [
    path("reading/", views.reading_list, name="reading_list"),
    path("studies/<int:pk>/", views.study_detail, name="study_detail"),
    path("studies/<int:pk>/view", views.study_viewer, name="study_viewer"),
    path("studies/series/<int:pk>/thumbnail.png", views.series_thumbnail, name="series_thumbnail"),
]

# The viewer's comparing and hanging protocols (imaging/studies/compare_views.py).
from imaging.studies import compare_views  # noqa: E402

urlpatterns += [
    path("studies/<int:pk>/priors.json", compare_views.study_priors_json, name="study_priors_json"),
    path("studies/<int:pk>/hanging.json", compare_views.study_hanging_json, name="study_hanging_json"),
]
