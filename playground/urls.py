from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from playground import health
from sessions_app.admin import mirror_view

urlpatterns = [
    path("admin/mirror/", admin.site.admin_view(mirror_view), name="admin-mirror"),
    path("admin/", admin.site.urls),
    # For those who are not staff, such as a workshop's trainer (the admin's own login lets staff only in).
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"^healthz/?$", health.healthz, name="healthz"),
    re_path(r"^readyz/?$", health.readyz, name="readyz"),
    re_path(r"^metrics/?$", health.metrics, name="metrics"),
    path("", include("sessions_app.urls")),
    path("", include("labs.urls")),
    path("", include("terminals.urls")),
]

handler400 = "playground.views.bad_request"
handler404 = "playground.views.not_found"
handler500 = "playground.views.server_error"
