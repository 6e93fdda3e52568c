from django.urls import path

from sharing import staff_views, views

urlpatterns = [
    # The link's own pages: the token is all the address holds.
    path("s/<str:token>", views.share_open, name="share_open"),
    path("s/<str:token>/images/<int:number>.jpg", views.share_image, name="share_image"),
    path("s/<str:token>/study.zip", views.share_download, name="share_download"),
    path("s/<str:token>/opinion", views.share_opinion, name="share_opinion"),
    # The clinic's side (the study page's Sharing section).
    path("studies/<int:pk>/share-links", staff_views.link_create, name="share_link_create"),
    path("studies/<int:pk>/consults", staff_views.consult_create, name="consult_create"),
    path("studies/<int:pk>/consult-reports/seen", staff_views.reports_seen, name="consult_reports_seen"),
    path("share-links/<int:pk>/revoke", staff_views.link_revoke, name="share_link_revoke"),
]
