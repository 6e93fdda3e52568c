from django.urls import path

from imaging import views

urlpatterns = [
    path("reconciliation/", views.reconciliation, name="reconciliation"),
    path("studies/<int:pk>/", views.study_detail, name="study_detail"),
    path("studies/<int:pk>/link/", views.study_link, name="study_link"),
    path("studies/series/<int:pk>/split/", views.series_split, name="series_split"),
    path("studies/series/<int:pk>/thumbnail.png", views.series_thumbnail, name="series_thumbnail"),
]
