"""Dask clients for sharded aggregation: a bounded ``LocalCluster`` or a real scheduler.

:func:`dask_client` is a context manager that always closes what it opened, on every path
(errors, interrupts): with ``scheduler=None`` it starts a ``LocalCluster`` of ``workers``
single-threaded worker *processes* (gmpy2 arithmetic holds the GIL, so threads would not
scale), each capped at ``memory_limit``, no dashboard, every server on 127.0.0.1 and a
free port; with ``scheduler="tcp://host:8786"``
it connects to an existing cluster and closes only the client.  Local worker processes
import this very ``psc`` (its repository root is put first on their ``PYTHONPATH``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client

_ROOT = str(Path(__file__).resolve().parent.parent.parent)


@contextmanager
def dask_client(
    scheduler: str | None = None,
    *,
    workers: int = 2,
    memory_limit: str = "2GiB",
    timeout_s: float = 60.0,
) -> Iterator[Client]:
    """A connected ``distributed.Client`` (see the module doc).  Raises ``ValueError`` for
    ``workers < 1`` and ``ImportError`` (naming the ``scale`` extra) without dask."""
    if workers < 1:
        raise ValueError(f"a local cluster needs at least one worker, got {workers}")
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - the extra is installed in dev
        raise ImportError("sharded aggregation needs dask: pip install 'psc[scale]'") from exc
    if scheduler is not None:
        client = Client(scheduler, timeout=timeout_s)
        try:
            yield client
        finally:
            client.close()
        return
    path = os.pathsep.join(x for x in (_ROOT, os.environ.get("PYTHONPATH", "")) if x)
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        memory_limit=memory_limit,
        dashboard_address=None,
        # no dashboard, and the scheduler's HTTP server (health and metrics routes) on a
        # free loopback port: its default, 8787, is often another cluster's on a shared
        # machine, and distributed then warns and moves (an error where warnings are)
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
        env={"PYTHONPATH": path},
    )
    try:
        client = Client(cluster, timeout=timeout_s)
        try:
            client.wait_for_workers(workers, timeout=timeout_s)
            yield client
        finally:
            client.close()
    finally:
        cluster.close()
