"""A session's steps: read them, check one, solve one."""

urlpatterns: list = []
