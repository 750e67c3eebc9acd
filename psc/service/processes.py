"""Parties as OS processes on 127.0.0.1: started, waited for, stopped on every path.

:func:`start_party` runs ``python -m psc serve ROLE --config FILE --port 0 --ready-file F``
in its own session (process group) and returns once the party answers; :meth:`Party.stop`
sends SIGTERM to the group and SIGKILL after a grace period, and :class:`Parties` stops
every party it started when its ``with`` block ends, whatever ends it (an exception,
Ctrl-C, a failed check), so no process outlives the demo or the test that started it; a
party whose parent is killed outright (SIGKILL) notices within a second and stops itself.
:meth:`Party.kill` is ``kill -9`` (fault tests).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from psc.exceptions import PscError

#: Seconds a party has to start answering.
START_TIMEOUT = 60.0
#: Seconds a party has to stop after SIGTERM before SIGKILL.
STOP_GRACE = 10.0


class PartyFailed(PscError, RuntimeError):
    """A party process exited or did not become ready; its stderr is in the message."""


@dataclass
class Party:
    """One running party process."""

    role: str
    config: Path
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9`` the party's process group, and reap it."""
        _signal_group(self.proc, signal.SIGKILL)
        self.proc.wait(timeout=STOP_GRACE)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after :data:`STOP_GRACE` seconds; always reaps."""
        if self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc, signal.SIGKILL)
                self.proc.wait(timeout=STOP_GRACE)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)  # the party leads its own session (start_new_session)


def child_env() -> dict[str, str]:
    """The environment of a party process: this one's, with the psc being run first on the
    path (so a party runs the same code as its parent, installed or not)."""
    import psc

    root = str(Path(psc.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def start_party(
    role: str,
    config: str | Path,
    *,
    port: int = 0,
    peers: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Party:
    """Start ``psc serve role --config config [--peer NAME=URL ...] [extra_args]`` and wait
    until it answers (``peers``: the parties it calls; ``extra_args``: e.g.
    ``("--log-url", url)`` for a member reading the log over HTTP).

    Raises :class:`PartyFailed` (with the party's stderr) if it exits or is not ready
    within :data:`START_TIMEOUT` seconds; the process is stopped first.
    """
    scratch = Path(tempfile.mkdtemp(prefix=f"psc-{role}-"))
    ready, log = scratch / "ready", scratch / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "psc",
                "serve",
                role,
                "--config",
                str(config),
                "--port",
                str(port),
                "--ready-file",
                str(ready),
                "--watch-parent",
                str(os.getpid()),
                *(f"--peer={name}={url}" for name, url in (peers or {}).items()),
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            env=child_env(),
        )
    party = Party(role, Path(config), proc, 0, log)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                text = log.read_text("utf-8", "replace").strip()
                raise PartyFailed(f"psc serve {role} did not start: {text or 'no output'}")
            time.sleep(0.05)
    except BaseException:  # Ctrl-C while waiting included: never leave the party running
        party.stop()
        raise
    party.port = int(ready.read_text().split()[0])
    return party


@dataclass
class Parties:
    """Parties started in a ``with`` block, all stopped when it ends (any way it ends)."""

    running: list[Party] = field(default_factory=list)

    def start(
        self,
        role: str,
        config: str | Path,
        peers: Mapping[str, str] | None = None,
        *,
        extra_args: Sequence[str] = (),
    ) -> Party:
        party = start_party(role, config, peers=peers, extra_args=extra_args)
        self.running.append(party)
        return party

    def __enter__(self) -> Parties:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        while self.running:
            self.running.pop().stop()
