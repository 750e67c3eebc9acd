"""Shared by the log-route and replica tests: an aggregator's app in process (starlette's
TestClient), agencies to feed it, and a log source that can lie.

The aggregator's SQLite connection must be opened on the thread that serves its app, so
the app is built inside the TestClient's portal (:meth:`LogWorld.serve`).  Keys: an
INSECURE 512-bit Paillier test key; every other key from ``psc init``.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from psc.catalog import period_index, period_start
from psc.events import Event
from psc.ledger.store import SQLiteLedger
from psc.parties.agency import Agency
from psc.parties.aggregator import Aggregator
from psc.protocol.parameters import ProtocolParameters
from psc.protocol.signing import digest
from psc.service.apps import aggregator_app
from psc.service.client import _error_of
from psc.service.config import load_config
from psc.service.deploy import init_deployment, open_agencies, open_aggregator
from psc.testing import insecure_keypair

with warnings.catch_warnings():  # starlette asks for httpx2, which this venv does not pin
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

N_SUBJECTS = 12

Asgi = Callable[..., Any]


class _Deferred:
    """An ASGI app whose inner app is set once the TestClient's portal thread runs."""

    def __init__(self) -> None:
        self.app: Asgi | None = None

    async def __call__(self, scope: dict[str, Any], receive: Asgi, send: Asgi) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert self.app is not None
        await self.app(scope, receive, send)


def period() -> int:
    """Last month: open to submissions now."""
    return period_index(dt.datetime.now(dt.UTC).date()) - 1


@dataclass
class LogWorld:
    """A deployment on disk with one aggregator ledger served in process."""

    root: Path
    client: TestClient
    shim: _Deferred
    params: ProtocolParameters
    agencies: list[Agency]
    aggregators: dict[Path, Aggregator] = field(default_factory=dict)

    @property
    def ledger(self) -> Path:
        return self.root / "aggregator" / "ledger.sqlite"

    def open(self, ledger: Path | None = None) -> Aggregator:
        """The aggregator on ``ledger`` (default: the deployment's), opened on the serving
        thread and kept."""
        path = ledger or self.ledger
        if path not in self.aggregators:
            cfg = replace(load_config(self.root / "aggregator.toml"), ledger=str(path))
            assert self.client.portal is not None
            self.aggregators[path] = self.client.portal.call(open_aggregator, cfg)
        return self.aggregators[path]

    def serve(self, ledger: Path | None = None) -> Aggregator:
        """Serve the aggregator on ``ledger`` from now on."""
        agg = self.open(ledger)
        assert self.client.portal is not None
        self.shim.app = self.client.portal.call(aggregator_app, agg)
        return agg

    def submit(self, agency: int, slot: int, ledger: Path | None = None) -> None:
        """Agency ``agency`` submits one event for ``slot`` to the aggregator on ``ledger``."""
        agg = self.open(ledger)
        a = self.agencies[agency]
        rule = next(
            r for r in self.params.catalog.rules if r.agency == a.catalog_agency and r.delta
        )
        ev = Event(
            slot, rule.id, period_start(period()) + dt.timedelta(days=2), digest(b"%d" % slot).hex()
        )
        sealed = a.submit([ev], period())
        assert self.client.portal is not None
        self.client.portal.call(agg.ingest, sealed)

    def snapshot(self, name: str, ledger: Path | None = None) -> Path:
        """A copy of the ledger as it stands (another history can grow from it)."""
        src = self.open(ledger)
        out = self.root / "aggregator" / f"{name}.sqlite"

        def copy() -> None:
            assert isinstance(src.ledger, SQLiteLedger)
            dst = sqlite3.connect(out)
            try:
                src.ledger.connection.backup(dst)
            finally:
                dst.close()

        assert self.client.portal is not None
        self.client.portal.call(copy)
        return out

    def digest_of(self, ledger: Path | None = None) -> bytes:
        agg = self.open(ledger)
        assert self.client.portal is not None and isinstance(agg.ledger, SQLiteLedger)
        out: bytes = self.client.portal.call(agg.ledger.state_digest)
        return out


@contextmanager
def log_world(tmp: Path) -> Iterator[LogWorld]:
    """A fresh deployment (registrations logged, no submission yet), served in process."""
    root = init_deployment(tmp / "dep", subjects=N_SUBJECTS, keypair=insecure_keypair(0, 512))
    shim = _Deferred()
    with TestClient(shim) as client:
        cfg = load_config(root / "aggregator.toml")
        assert client.portal is not None
        agg = client.portal.call(open_aggregator, cfg)
        w = LogWorld(root, client, shim, agg.params, open_agencies(root, agg.params))
        w.aggregators[w.ledger] = agg
        w.serve()
        yield w


@dataclass
class LyingSource:
    """A log source over the TestClient that can rewrite any answer before the reader
    sees it (``lie(path, body) -> body``); ``paths`` records every route asked."""

    client: TestClient
    lie: Callable[[str, bytes], bytes] | None = None
    paths: list[str] = field(default_factory=list)

    def get(self, path: str) -> bytes:
        self.paths.append(path)
        r = self.client.get(path)
        if r.status_code != 200:
            raise _error_of(r)
        return r.content if self.lie is None else self.lie(path, r.content)
