"""A worker's watch over the engines of the hosts it serves (services.hosts.host_look).

A thread of the worker's own rather than a scheduled job: a job would wait
in the host's queue behind a burst of provisioning, and the host would look
down exactly when it is busiest.
"""

import logging
import threading
import time

from django.conf import settings
from django.db import connection

from sessions_app.services.hosts import host_look

logger = logging.getLogger(__name__)


class HostWatch(threading.Thread):
    def __init__(self, names: list[str]) -> None:
        super().__init__(name="host-watch", daemon=True)
        self.names = names

    def run(self) -> None:
        logger.info("watching the Docker engines of %s", ", ".join(self.names))
        while True:
            for name in self.names:
                try:
                    host_look(name=name)
                except Exception:
                    # The database out of reach, most likely: the next round tries again.
                    logger.exception("could not look at the Docker host %s", name)
                finally:
                    connection.close()  # back to the pool, between rounds
            time.sleep(settings.PLAYGROUND_HOST_LOOK_EVERY)
