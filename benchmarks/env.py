"""The environment a benchmark ran in, recorded next to its figures.

:func:`environment` returns a JSON-ready dict: Python, platform, CPU model and count (and
the CPUs this process may use), memory, load average at the time of the run (the machine
may be shared), versions of the libraries whose speed the figures depend on, whether phe
found gmpy2 (phe without GMP is several times slower, which would inflate every speed-up
against it), and the git commit with a dirty flag.  Every probe degrades to ``None``
rather than failing: a missing record must never stop a benchmark.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: distributions whose versions go into every record
LIBRARIES = ("phe", "gmpy2", "numpy", "tenseal", "cryptography", "psc")

_REPO = Path(__file__).resolve().parent.parent


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str | None]:
    """Installed version of each distribution, ``None`` if it is not installed."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str | None:
    """The CPU model name from ``/proc/cpuinfo`` (Linux), else :func:`platform.processor`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def memory_bytes() -> int | None:
    """Total physical memory from ``/proc/meminfo`` (Linux), else ``None``."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _git(*args: str) -> str | None:
    # GIT_OPTIONAL_LOCKS=0: read-only, never refresh (write) the index of a shared tree
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=_REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_state() -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository (read-only)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or None, "dirty": None if status is None else bool(status)}


def _phe_uses_gmpy2() -> bool | None:
    try:
        import phe.util
    except ImportError:
        return None
    return bool(getattr(phe.util, "HAVE_GMP", False))


def _gmp_version() -> str | None:
    try:
        import gmpy2
    except ImportError:
        return None
    return str(gmpy2.mp_version())


def environment() -> dict[str, Any]:
    """Everything a reader needs to judge where a figure came from (see module doc)."""
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "timestamp_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "memory_bytes": memory_bytes(),
        "load_average_1_5_15min": load,
        "libraries": library_versions(),
        "gmp": _gmp_version(),
        "phe_uses_gmpy2": _phe_uses_gmpy2(),
        "git": git_state(),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(environment(), indent=2))
