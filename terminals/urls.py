from django.urls import path, re_path

from terminals import views

app_name = "terminals"

urlpatterns = [
    path("", views.index, name="index"),
    # Like the API's routes, with or without a trailing slash.
    re_path(r"^p/(?P<session_id>[^/]+)/?$", views.session, name="session"),
    re_path(r"^t/(?P<slug>[-a-zA-Z0-9_]{1,50})/?$", views.template_start, name="template"),
    re_path(r"^p/(?P<session_id>[^/]+)/ports/(?P<port>[0-9]{1,5})/?$", views.open_port, name="open-port"),
]
