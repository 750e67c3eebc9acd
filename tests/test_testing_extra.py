"""``psc.testing`` without hypothesis says to install the dev extra (issue 12, item 8)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_without_hypothesis_names_the_dev_extra() -> None:
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "try:\n    import psc.testing\n"
        "except ImportError as exc:\n    print(exc)\n    sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3, done.stderr
    assert "pip install 'psc[dev]'" in done.stdout and "hypothesis" in done.stdout
