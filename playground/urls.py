from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("sessions_app.urls")),
    path("", include("terminals.urls")),
]

handler400 = "playground.views.bad_request"
handler404 = "playground.views.not_found"
handler500 = "playground.views.server_error"
