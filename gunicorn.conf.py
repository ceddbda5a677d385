"""gunicorn's settings for the portal: ``gunicorn -c gunicorn.conf.py`` (``make run`` and
production; command-line options such as ``--bind`` override them).

Sizing. No request waits on Microsoft any more: Link Account, Check again and the certificate
upload check run as background jobs (portal/jobs), so a request is milliseconds of Python and
SQLite. ``gthread`` workers serve ``threads`` requests at once per process, so a slow client,
a burst of 1-second progress polls or a request waiting for SQLite's write lock holds one
thread, not the whole process (a ``sync`` worker holds one request at a time: two slow checks
stopped a validation fragment for seconds). Two processes for a 2-core machine, one per core:
the GIL runs one thread of a process at a time, so CPU parallelism needs processes; eight
threads each, because most of a request's time is waiting (SQLite, the socket), not CPU. More
processes would only add SQLite connections and job pools. Scale ``PORTAL_WORKERS`` with the
cores (``2 x cores`` is the usual ceiling) and keep the threads.

Each worker process also has its own job threads (``JOB_THREADS``, 4 by default), made at its
first job, after the fork (portal/jobs/executor.py).
"""

import os

# The address to listen on; behind the TLS-terminating reverse proxy, a loopback one.
bind = os.environ.get("PORTAL_BIND", "127.0.0.1:5000")
wsgi_app = "wsgi:app"

worker_class = "gthread"
workers = int(os.environ.get("PORTAL_WORKERS", "2"))
threads = int(os.environ.get("PORTAL_THREADS", "8"))

# A gthread worker's main loop tells the arbiter it is alive while its threads serve, so this
# no longer cuts a long request: it restarts a worker whose process is stuck.
timeout = 30
# On stop or reload a worker finishes its requests, and its running jobs, for this long; a job
# still running then is shown as interrupted ("try again") once its lease expires.
graceful_timeout = 30
# Seconds an idle keep-alive connection from the reverse proxy stays open.
keepalive = 5

# Server hooks: the metrics of the workers of one server (no-ops unless PROMETHEUS_MULTIPROC_DIR).


def on_starting(server):
    """With PROMETHEUS_MULTIPROC_DIR set (README, Metrics): start with an empty directory."""
    from portal import metrics

    metrics.gunicorn_on_starting(server)


def child_exit(server, worker):
    """A worker that exits leaves its live gauges behind unless marked dead."""
    from portal import metrics

    metrics.gunicorn_child_exit(server, worker)
