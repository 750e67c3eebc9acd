"""Serving one party: its app on a socket, until SIGTERM or SIGINT.

``psc serve ROLE --config FILE`` builds the party from its files
(:mod:`psc.service.deploy`) and serves its app (:mod:`psc.service.apps`) with uvicorn on
``host:port`` from the config (``--port`` overrides; 0 picks a free port).  The socket is
bound here, before uvicorn starts, so the port is known at once: with ``--ready-file`` it
is written there (atomically) when the party is ready to answer, which is how
:mod:`psc.service.processes` learns it.  SIGTERM and SIGINT stop the server after the
request in flight; everything a party acknowledged is already committed to its SQLite
files, so even ``kill -9`` loses nothing acknowledged.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from psc.exceptions import ServiceConfigError
from psc.service.apps import agency_app, aggregator_app, key_holder_app, member_app, registry_app
from psc.service.config import ServiceConfig, is_log_url
from psc.service.deploy import open_aggregator, open_member
from psc.service.desks import open_agency_desk, open_registry, open_reveal_desk
from psc.service.rights_desks import open_rights_office
from psc.service.rights_office import rights_office_app


def build_app(
    cfg: ServiceConfig, peers: Mapping[str, str] | None = None, *, log_url: str | None = None
) -> FastAPI:
    """The app of ``cfg.role`` over its party, opened from its files; ``peers`` names the
    URLs of the parties it calls (:mod:`psc.service.desks`).

    ``log_url`` (members and the key holder, ``psc serve ... --log-url``): the aggregator's
    base URL, overriding the config's ``log``; the party then checks reveals against a
    verified replica of the log synced over HTTP.  Raises :class:`ServiceConfigError`
    otherwise.
    """
    peers = peers or {}
    if log_url is not None:
        if cfg.role not in ("member", "key-holder") or not is_log_url(log_url):
            raise ServiceConfigError(
                "--log-url takes a member or the key holder, and an http:// URL"
            )
        cfg = dataclasses.replace(cfg, log=log_url)
    if cfg.role == "aggregator":
        return aggregator_app(open_aggregator(cfg))
    if cfg.role == "member":
        return member_app(open_member(cfg))
    if cfg.role == "registry":
        return registry_app(open_registry(cfg))
    if cfg.role == "agency":
        return agency_app(open_agency_desk(cfg, peers))
    if cfg.role == "key-holder":
        return key_holder_app(open_reveal_desk(cfg, peers))
    if cfg.role == "grading-authority":
        from psc.service.he_app import grading_authority_app
        from psc.service.he_deploy import open_grading_desk

        return grading_authority_app(open_grading_desk(cfg))
    if cfg.role == "rights-office":
        return rights_office_app(open_rights_office(cfg, peers))
    raise ServiceConfigError(f"no service for role {cfg.role!r}")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port)."""
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for
    # sockets that say they are TCP; without it every response waits for the client's
    # delayed ACK between headers and body (about 40 ms a request, measured)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ServiceConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    sock.listen(128)
    return sock


def serve(
    cfg: ServiceConfig,
    *,
    port: int | None = None,
    ready_file: str | None = None,
    watch_parent: int | None = None,
    peers: Mapping[str, str] | None = None,
    log_url: str | None = None,
) -> None:
    """Serve ``cfg``'s party until stopped (SIGTERM/SIGINT).

    ``watch_parent``: the pid of the process that started this one; stop (SIGTERM to
    itself) as soon as it is gone, even if it was killed with SIGKILL and could not stop
    its children, or died before this process got this far.  ``log_url``: see
    :func:`build_app`.
    """
    if watch_parent is not None:
        _watch_parent(watch_parent)
    app = build_app(cfg, peers, log_url=log_url)
    sock = bind(cfg.host, cfg.port if port is None else port)
    bound = sock.getsockname()[1]

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        limit_concurrency=256,
        h11_max_incomplete_event_size=64 * 1024,
    )
    server = _Server(config, ready_file, bound)
    server.run(sockets=[sock])


def _watch_parent(parent: int) -> None:
    import signal
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="psc-parent-watch", daemon=True).start()


class _Server(uvicorn.Server):
    """uvicorn's server, writing the ready file once it accepts connections."""

    def __init__(self, config: uvicorn.Config, ready_file: str | None, port: int) -> None:
        super().__init__(config)
        self._ready_file = ready_file
        self._port = port

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._ready_file is not None and not self.should_exit:
            tmp = Path(self._ready_file + ".tmp")
            tmp.write_text(f"{self._port}\n{os.getpid()}\n")
            os.replace(tmp, self._ready_file)
