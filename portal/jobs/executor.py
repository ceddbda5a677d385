"""The process's job threads: two ``ThreadPoolExecutor``s, created at the first job.

``supervisors`` run one thread per job that holds its lease, writes its steps and enforces its
deadline; ``work`` runs the calls to Microsoft (``JOB_THREADS`` at a time per process). Two
pools, so that a supervisor never waits for a thread of its own pool (all supervisors waiting
for queued work would stall every job until its deadline).

Nothing here starts at import or in ``create_app``: gunicorn forks its workers after loading
the app (and with ``preload_app`` even after building it), and threads do not survive a fork:
a child would inherit pools whose threads exist only in its parent. So the pools are made
lazily, by the process that submits, and a forked child forgets its parent's
(``os.register_at_fork``). At interpreter exit ``concurrent.futures`` joins the threads, so a
gracefully stopping worker finishes its running jobs (within gunicorn's ``graceful_timeout``);
a killed one leaves them to expire as interrupted.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

#: Supervisors mostly sleep; enough of them that a queued job is claimed at once.
SUPERVISORS = 32

_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}
_owner_pid: int | None = None


def _forget_after_fork() -> None:
    """In a forked child: the parent's pools (and maybe a held lock) are not ours."""
    global _lock, _owner_pid
    _lock = threading.Lock()
    _pools.clear()
    _owner_pid = None


os.register_at_fork(after_in_child=_forget_after_fork)


def _pool(name: str, size: int) -> ThreadPoolExecutor:
    global _owner_pid
    with _lock:
        if _owner_pid != os.getpid():  # belt and braces for a fork the hook did not see
            _pools.clear()
            _owner_pid = os.getpid()
        pool = _pools.get(name)
        if pool is None:
            pool = ThreadPoolExecutor(size, thread_name_prefix=f"portal-job-{name}")
            _pools[name] = pool
        return pool


def supervise(fn: Callable[..., Any], *args: Any) -> Future:
    """Run a job's supervisor."""
    return _pool("supervisor", SUPERVISORS).submit(fn, *args)


def work(size: int, fn: Callable[..., Any], *args: Any) -> Future:
    """Run a job's work (its calls to Microsoft); ``size`` applies when the pool is made."""
    return _pool("work", size).submit(fn, *args)


def started() -> bool:
    """True once this process has made its pools (tests: none before the first job)."""
    with _lock:
        return bool(_pools) and _owner_pid == os.getpid()
