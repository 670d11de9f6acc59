"""A Celery app of one slow job, for the test of a worker that loses Redis
while it runs a job (tests/integration/test_broker_on_redis.py).

Its broker is BROKER_UNDER_TEST; with MENDED=1 it uses the platform's Redis
transport (playground.broker), otherwise kombu's own.
"""

import os
import time
from pathlib import Path

from celery import Celery

from playground import broker

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
