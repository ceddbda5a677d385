"""Prometheus metrics: calls to Microsoft, connections by state, and the cron jobs' last runs.

Two kinds of numbers, kept apart on purpose:

- **Counted in the process** — calls to Microsoft (a Counter by cloud, endpoint kind and outcome
  class; a Histogram of their latency by cloud and endpoint kind), fed by
  ``portal.entra.outbound.observe_calls``. Under gunicorn each worker counts its own; with
  ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client's multiprocess mode writes them to files
  there and every scrape adds the workers' files up
  (https://prometheus.github.io/client_python/multiprocess/).
- **Read from the database at scrape time** — connections per state, health and kind, and each
  job's last run (``job_runs``). A custom collector computes them in the process answering the
  scrape, so they are never multiplied by the number of workers and are never stale.

Labels are only ever a cloud key, an endpoint kind, an outcome class, a state, a health, a kind
or a job name: never a tenant, a domain, a connection id, a URL or a secret.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from portal import storage
from portal.entra import outbound

log = logging.getLogger("portal.metrics")

#: The environment variable of prometheus_client's multiprocess mode (read by the library at
#: import; the directory must be emptied before the server starts).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Our own registry rather than the library's global one: in multiprocess mode the scrape must
# not also collect these live objects (they would be counted twice, per the library's docs).
_REGISTRY = CollectorRegistry()

MICROSOFT_CALLS = Counter(
    "portal_microsoft_calls",
    "HTTP attempts to Microsoft (login, discovery, keys, Graph) by cloud, endpoint kind and "
    "outcome class (ok, client_error, throttled, server_error, timeout, network).",
    ["cloud", "endpoint", "outcome"],
    registry=_REGISTRY,
)
MICROSOFT_CALL_SECONDS = Histogram(
    "portal_microsoft_call_duration_seconds",
    "Time of one HTTP attempt to Microsoft, by cloud and endpoint kind.",
    ["cloud", "endpoint"],
    # An attempt is bounded by the session's timeouts (3.05 s connect, 10 s read).
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0),
    registry=_REGISTRY,
)


def record_call(call: outbound.OutboundCall) -> None:
    """The observer of every outbound attempt (``outbound.observe_calls``)."""
    MICROSOFT_CALLS.labels(call.cloud, call.endpoint, call.outcome).inc()
    MICROSOFT_CALL_SECONDS.labels(call.cloud, call.endpoint).observe(call.seconds)


_observer_lock = threading.Lock()
_remove_observer: Callable[[], None] | None = None


def init_app(app: Any) -> None:
    """Observe outbound calls, once per process however many apps are built (tests build many;
    the counters belong to the process, not to an app)."""
    global _remove_observer
    with _observer_lock:
        if _remove_observer is None:
            _remove_observer = outbound.observe_calls(record_call)


# --- Job progress ----------------------------------------------------------------------------


@dataclass
class JobRecorder:
    """The handle a recorded run gets: report progress, then the final counts."""

    run_id: int
    processed: int | None = None
    total: int | None = None
    summary: dict | None = None
    ok: bool = True
    _written_at: float = 0.0

    #: Progress is written at most this often (a write per connection would be one per check).
    PROGRESS_INTERVAL = 1.0

    def progress(self, processed: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - self._written_at >= self.PROGRESS_INTERVAL:
            storage.record_job_progress(self.run_id, processed, total)
            self._written_at = now

    def finish(
        self, *, processed: int, total: int | None = None, summary: dict | None = None, ok=True
    ) -> None:
        """The counts stored when the block ends (a summary of counts only, never ids)."""
        self.processed, self.total, self.summary, self.ok = processed, total, summary, ok


@contextmanager
def job_run(job: str, total: int | None = None) -> Iterator[JobRecorder]:
    """Record one run of a cron job in ``job_runs``: started now, finished when the block ends
    (``failed`` with the exception's class name when it raises; the exception propagates)."""
    recorder = JobRecorder(storage.start_job_run(job, total))
    try:
        yield recorder
    except BaseException as exc:
        storage.finish_job_run(recorder.run_id, ok=False, summary={"error": type(exc).__name__})
        raise
    storage.finish_job_run(
        recorder.run_id,
        ok=recorder.ok,
        processed=recorder.processed,
        total=recorder.total,
        summary=recorder.summary,
    )


#: Where the collector finds jobs' statuses. The cron jobs record theirs in ``job_runs``; a
#: background job of the web process (a ``jobs`` table) adds its reader here, returning the
#: same ``storage.JobStatus`` shape, and appears under the same gauges.
JOB_STATUS_SOURCES: list[Callable[[], Iterable[storage.JobStatus]]] = [storage.job_statuses]


# --- The scrape ------------------------------------------------------------------------------


class DatabaseCollector(Collector):
    """Gauges computed from the database when Prometheus scrapes (in the answering worker)."""

    def collect(self) -> Iterable[Metric]:
        yield self._connections()
        yield self._failing()
        yield self._background_jobs()
        yield from self._jobs()

    @staticmethod
    def _failing() -> Metric:
        gauge = GaugeMetricFamily(
            "portal_connections_failing",
            "Connections whose last attempts failed, by whose move it is (the health record's "
            "error class: transient, needs_customer, our_config).",
            labels=["error_class"],
        )
        counts = dict(storage.failing_counts())
        for error_class in ("transient", "needs_customer", "our_config"):
            gauge.add_metric([error_class], counts.get(error_class, 0))
        return gauge

    @staticmethod
    def _background_jobs() -> Metric:
        gauge = GaugeMetricFamily(
            "portal_background_jobs",
            "Checks run for a person (Link Account, Check again, the upload check): the "
            "unfinished ones and those of the last hour, by kind and status.",
            labels=["kind", "status"],
        )
        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
        counts = {(k, s): n for k, s, n in storage.job_counts(since)}
        for kind in storage.JOB_KINDS:
            for status in storage.JOB_STATUSES:
                gauge.add_metric([kind, status], counts.get((kind, status), 0))
        return gauge

    @staticmethod
    def _connections() -> Metric:
        gauge = GaugeMetricFamily(
            "portal_connections",
            "Connections that are not deleted, by lifecycle state, health and kind.",
            labels=["state", "health", "kind"],
        )
        counts = {(s, h, k): n for s, h, k, n in storage.connection_counts()}
        # Every combination, zeros included, so that a series never disappears.
        for state in (s for s in storage.STATES if s != storage.DELETED):
            for health in storage.HEALTHS:
                for kind in storage.KINDS:
                    gauge.add_metric([state, health, kind], counts.get((state, health, kind), 0))
        return gauge

    @staticmethod
    def _jobs() -> Iterable[Metric]:
        def family(name: str, text: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"portal_job_{name}", text, labels=["job"])

        started = family("last_started_timestamp_seconds", "When the job's latest run started.")
        finished = family("last_finished_timestamp_seconds", "When a run of the job last ended.")
        success = family("last_success_timestamp_seconds", "When a run last ended successfully.")
        processed = family("last_processed", "Items the latest run has processed so far.")
        total = family("last_total", "Items the latest run has to process.")
        running = family("running", "1 while the job's latest run has not ended.")
        for source in JOB_STATUS_SOURCES:
            for status in source():
                run, job = status.latest, [status.latest.job]
                started.add_metric(job, run.started_at)
                if status.last_finished_at is not None:
                    finished.add_metric(job, status.last_finished_at)
                if status.last_success_at is not None:
                    success.add_metric(job, status.last_success_at)
                processed.add_metric(job, run.processed)
                if run.total is not None:
                    total.add_metric(job, run.total)
                running.add_metric(job, 1 if run.running else 0)
        return started, finished, success, processed, total, running


class _ProcessCollector(Collector):
    """This process's own counters (single-process mode)."""

    def collect(self) -> Iterable[Metric]:
        return _REGISTRY.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def exposition() -> tuple[bytes, str]:
    """The text exposition of one scrape and its content type (needs an app context)."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)  # every worker's files, added up
    else:
        registry.register(_ProcessCollector())
    registry.register(DatabaseCollector())
    started = time.perf_counter()
    body = generate_latest(registry)
    log.debug("metrics scrape built in %.1f ms", (time.perf_counter() - started) * 1000)
    return body, CONTENT_TYPE_LATEST


# --- gunicorn (hooks its config file calls) --------------------------------------------------


def gunicorn_on_starting(server: Any) -> None:
    """gunicorn ``on_starting``: empty the multiprocess directory (the counters of an earlier
    run would otherwise be added to this one's), creating it if missing."""
    path = multiprocess_dir()
    if not path:
        return
    os.makedirs(path, mode=0o700, exist_ok=True)
    for name in glob.glob(os.path.join(path, "*.db")):
        os.remove(name)


def gunicorn_child_exit(server: Any, worker: Any) -> None:
    """gunicorn ``child_exit``: a worker ended; the library's bookkeeping for its files."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(worker.pid)
