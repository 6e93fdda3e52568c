from django.urls import path

from imaging.reconcile import views

urlpatterns = [
    path("reconciliation/", views.reconciliation, name="reconciliation"),
    path("studies/<int:pk>/link/", views.study_link, name="study_link"),
    path("studies/series/<int:pk>/split/", views.series_split, name="series_split"),
]
