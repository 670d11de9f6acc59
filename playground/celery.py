import os

from celery import Celery
from celery.signals import task_prerun

from playground.logcontext import set_session

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")

app = Celery("playground")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _about_no_session(**_) -> None:
    """A job starts about no session, whatever the thread ran before; a job
    about one tags itself (sessions_app.tasks), so that no line is tagged
    with a session it is not about."""
    set_session("-")
