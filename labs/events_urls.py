"""Workshops: join one by its invite, and the trainer's dashboard."""

urlpatterns: list = []
