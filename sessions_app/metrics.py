"""Prometheus metrics about sessions and provisioning, read from the database.

Web, worker and beat are separate processes, and provisioning happens in the
worker, so counters kept in memory would be split between processes and lost
on every restart. Instead these figures are computed from the database at
scrape time: every web process reports the same, true numbers.
"""

import logging
from collections import Counter

from django.db import DatabaseError
from django.db.models import Count, Q, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from sessions_app.models import DockerHost, Instance, PreparedSession, Session
from sessions_app.services.hosts import live_instances

logger = logging.getLogger(__name__)

# Seconds from POST /sessions to a running instance: about one second is the
# goal, tens of seconds means a cold or overloaded engine.
PROVISIONING_BUCKETS = (0.5, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 60)


PREPARED_HELP = "Prepared sessions whose instance runs, waiting to be handed out."
HOST_SESSIONS_HELP = "Open sessions placed on each Docker host."
HOST_CAPACITY_HELP = "Sessions each Docker host may run at once."
HOST_PREPARED_HELP = "Prepared sessions ready on each Docker host."
HOST_STATE_HELP = "Each Docker host's state (1 for the one it is in)."
HOST_SEEN_HELP = "Seconds since each Docker host's engine last answered its workers."
HOST_PROVISIONING_HELP = "Seconds from creation to a running instance, by Docker host."


class DatabaseCollector(Collector):
    def describe(self):
        # Without describe(), registering would call collect(), and so query
        # the database at import time.
        return [
            GaugeMetricFamily("playground_sessions", "Sessions by status.", labels=["status"]),
            GaugeMetricFamily(
                "playground_sessions_by_playground",
                "Sessions by playground and status.",
                labels=["playground", "status"],
            ),
            GaugeMetricFamily("playground_instances", "Instances by status.", labels=["status"]),
            GaugeMetricFamily(
                "playground_instances_by_playground",
                "Instances by playground and status.",
                labels=["playground", "status"],
            ),
            HistogramMetricFamily("playground_provisioning_seconds", "Seconds from creation to a running instance."),
            CounterMetricFamily(
                "playground_provisioning_failures", "Instances that failed to start, by reason.", labels=["reason"]
            ),
            GaugeMetricFamily("playground_prepared_sessions", PREPARED_HELP),
            *self.host_families(),
        ]

    @staticmethod
    def host_families() -> list:
        return [
            GaugeMetricFamily("playground_host_sessions", HOST_SESSIONS_HELP, labels=["host"]),
            GaugeMetricFamily("playground_host_capacity", HOST_CAPACITY_HELP, labels=["host"]),
            GaugeMetricFamily("playground_host_prepared_sessions", HOST_PREPARED_HELP, labels=["host"]),
            GaugeMetricFamily("playground_host_state", HOST_STATE_HELP, labels=["host", "state"]),
            GaugeMetricFamily("playground_host_seen_seconds_ago", HOST_SEEN_HELP, labels=["host"]),
            HistogramMetricFamily("playground_host_provisioning_seconds", HOST_PROVISIONING_HELP, labels=["host"]),
        ]

    def collect(self):
        try:
            families = [
                *self.sessions(),
                *self.instances(),
                self.provisioning_seconds(),
                self.provisioning_failures(),
                self.prepared_sessions(),
                *self.hosts(),
                self.host_provisioning_seconds(),
            ]
        except DatabaseError as exc:
            # Leave these figures out rather than fail the whole scrape: the
            # process's own metrics are still worth having, and /readyz says
            # what is wrong with the database.
            logger.warning("metrics: cannot read the database: %s", exc)
            return
        yield from families

    @staticmethod
    def sessions() -> list[GaugeMetricFamily]:
        return DatabaseCollector._by_status("playground_sessions", "Sessions", Session, playground="playground")

    @staticmethod
    def instances() -> list[GaugeMetricFamily]:
        return DatabaseCollector._by_status(
            "playground_instances", "Instances", Instance, playground="session__playground"
        )

    @staticmethod
    def _by_status(
        name: str, what: str, model: type[Session | Instance], *, playground: str
    ) -> list[GaugeMetricFamily]:
        """`name{status}` and `name_by_playground{playground, status}`, from one grouped query.

        Every status appears, with 0 when there is none; a playground
        appears once it has something on record.
        """
        rows = model.objects.order_by().values_list(playground, "status").annotate(n=Count("pk"))
        counts = {(playground_id, status): n for playground_id, status, n in rows}
        statuses = sorted(set(model.Status.values) | {status for _, status in counts})
        totals = Counter()
        for (_, status), n in counts.items():
            totals[status] += n
        by_status = GaugeMetricFamily(name, f"{what} by status.", labels=["status"])
        for status in statuses:
            by_status.add_metric([status], totals[status])
        by_playground = GaugeMetricFamily(
            f"{name}_by_playground", f"{what} by playground and status.", labels=["playground", "status"]
        )
        for playground_id in sorted({playground_id for playground_id, _ in counts}):
            for status in statuses:
                by_playground.add_metric([playground_id, status], counts.get((playground_id, status), 0))
        return [by_status, by_playground]

    @staticmethod
    def prepared_sessions() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "playground_prepared_sessions", PREPARED_HELP, value=PreparedSession.objects.filter(ready=True).count()
        )

    @staticmethod
    def provisioning_seconds() -> HistogramMetricFamily:
        # One query: a conditional count per bucket, the total and the sum.
        figures = Instance.objects.filter(provision_seconds__isnull=False).aggregate(
            count=Count("pk"), total=Sum("provision_seconds"), **_bucket_counts()
        )
        return HistogramMetricFamily(
            "playground_provisioning_seconds",
            "Seconds from creation to a running instance.",
            buckets=_cumulative(figures),
            sum_value=figures["total"] or 0.0,
        )

    @staticmethod
    def hosts() -> list[GaugeMetricFamily]:
        sessions, capacity, prepared, state, seen = DatabaseCollector.host_families()[:5]
        hosts = DockerHost.objects.annotate(
            used=Count("instances", filter=live_instances(), distinct=True),
            prepared=Count("prepared_sessions", filter=Q(prepared_sessions__ready=True), distinct=True),
        ).order_by("name")
        now = timezone.now()
        for host in hosts:
            sessions.add_metric([host.name], host.used)
            capacity.add_metric([host.name], host.capacity)
            prepared.add_metric([host.name], host.prepared)
            for value in DockerHost.State.values:
                state.add_metric([host.name, value], 1 if host.state == value else 0)
            if host.seen_at is not None:
                seen.add_metric([host.name], (now - host.seen_at).total_seconds())
        return [sessions, capacity, prepared, state, seen]

    @staticmethod
    def host_provisioning_seconds() -> HistogramMetricFamily:
        family = HistogramMetricFamily("playground_host_provisioning_seconds", HOST_PROVISIONING_HELP, labels=["host"])
        rows = (
            Instance.objects.filter(provision_seconds__isnull=False, host__isnull=False)
            .order_by()
            .values("host__name")
            .annotate(count=Count("pk"), total=Sum("provision_seconds"), **_bucket_counts())
        )
        for row in sorted(rows, key=lambda row: row["host__name"]):
            family.add_metric([row["host__name"]], _cumulative(row), sum_value=row["total"] or 0.0)
        return family

    @staticmethod
    def provisioning_failures() -> CounterMetricFamily:
        # A failed instance keeps its reason when it is later removed (it
        # becomes terminated), so this counts every failure still on record,
        # not only the instances failed right now.
        family = CounterMetricFamily(
            "playground_provisioning_failures", "Instances that failed to start, by reason.", labels=["reason"]
        )
        failed = Instance.objects.exclude(failure_reason="").order_by().values_list("failure_reason")
        for reason, count in sorted(failed.annotate(n=Count("pk"))):
            family.add_metric([reason], count)
        return family


def _bucket_counts() -> dict:
    """A conditional count of instances per bucket of PROVISIONING_BUCKETS."""
    return {
        f"le_{i}": Count("pk", filter=Q(provision_seconds__lte=bound)) for i, bound in enumerate(PROVISIONING_BUCKETS)
    }


def _cumulative(figures: dict) -> list[tuple[str, int]]:
    buckets = [(floatToGoString(bound), figures[f"le_{i}"]) for i, bound in enumerate(PROVISIONING_BUCKETS)]
    return [*buckets, ("+Inf", figures["count"])]


def register(registry: CollectorRegistry) -> None:
    """Register the database collector on a registry, once.

    Safe to call again, for example when the module that calls it is imported
    a second time (the autoreloader, tests): the registry refuses a second
    collector with the same metric names, and the first one stays.
    """
    try:
        registry.register(DatabaseCollector())
    except ValueError:
        logger.debug("metrics: the database collector is already registered")
