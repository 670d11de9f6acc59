"""A Celery app of one slow job, for the test of a worker that loses Redis
while it runs a job (tests/integration/test_broker_on_redis.py).

Its broker is BROKER_UNDER_TEST; with MENDED=1 it uses the platform's Redis
transport (playground.broker), otherwise kombu's own.
"""

import importlib.util
import os
import sys
import time
from pathlib import Path

from celery import Celery

# playground/broker.py alone: importing it as playground.broker would import
# the playground package, whose Celery app loads the platform's tasks, and
# this worker would then reconcile and prepare instances on start as the
# platform's own does (on the real database and engine).
_spec = importlib.util.spec_from_file_location(
    "platform_broker", Path(__file__).resolve().parents[2] / "playground" / "broker.py"
)
broker = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # where kombu finds the transport
_spec.loader.exec_module(broker)

if os.environ.get("MENDED") == "1":
    broker.register_redis()

app = Celery("broker-jobs", broker=os.environ["BROKER_UNDER_TEST"])
# As the platform's jobs: acknowledged once done, one at a time per thread.
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)


@app.task(name="broker_jobs.job")
def job(marker: str, seconds: float) -> None:
    Path(f"{marker}.started").touch()
    time.sleep(seconds)
    Path(f"{marker}.done").touch()
