from django.urls import path

from imaging.studies import views

urlpatterns = [
    path("reading/", views.reading_list, name="reading_list"),
    path("studies/<int:pk>/", views.study_detail, name="study_detail"),
    path("studies/<int:pk>/view", views.study_viewer, name="study_viewer"),
    path("studies/series/<int:pk>/thumbnail.png", views.series_thumbnail, name="series_thumbnail"),
]
