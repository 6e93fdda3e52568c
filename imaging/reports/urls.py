from django.urls import path

from imaging.reports import views

urlpatterns = [
    path("studies/<int:pk>/report/", views.study_report, name="study_report"),
]
