from django.urls import path, re_path

from imaging.export import views

urlpatterns = [
    path("studies/<int:pk>/export.zip", views.study_zip_download, name="study_export_zip"),
    re_path(
        r"^studies/(?P<pk>[0-9]{1,18})/instances/(?P<sop>[0-9.]{1,64})/frames/(?P<frame>[0-9]{1,6})/export\.(?P<ext>jpg|png)$",
        views.image_download,
        name="image_export",
    ),
    path("studies/<int:pk>/report.pdf", views.report_download, name="report_export_pdf"),
]
