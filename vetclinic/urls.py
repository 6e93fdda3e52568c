from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.defaults import page_not_found, server_error

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("importing.photo_urls")),  # before the API's catch-all 404 (photos, issue 17)
    # Before the API's: its catch-all under /api/v1/ would answer /api/v1/uploads.
    path("", include("importing.urls")),
    path("", include("integrations.api.urls")),
    path("dicomweb/", include("integrations.dicomweb.urls")),
    path("", include("sending.urls")),
    path("", include("imaging.urls")),
    path("", include("sharing.urls")),
    path("", include("patients.urls")),
]


def _api_aware(default):
    """Under /api/ and /dicomweb/ a 404 or 500 is JSON in the API's error shape; elsewhere the page."""
    from django.http import JsonResponse

    from integrations.api.errors import error_body

    def handler(request, *args, **kwargs):
        if request.path.startswith(("/api/", "/dicomweb/")):
            code = 500 if default is server_error else 404
            message = (
                "Something went wrong on our side; it is logged."
                if code == 500
                else "There is nothing at this address."
            )
            return JsonResponse(
                error_body(code, message, code="server_error" if code == 500 else None), status=code
            )
        return default(request, *args, **kwargs)

    return handler


handler404 = _api_aware(page_not_found)
handler500 = _api_aware(server_error)
