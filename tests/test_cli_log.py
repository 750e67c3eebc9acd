"""``psc log verify`` and ``psc log show``: output and exit codes (0 ok, 1 tampered, 2 unreadable)."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)

from psc.cli.main import main
from psc.ledger.translog import TransparencyLog

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUB_RAW = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
PUB_HEX = PUB_RAW.hex()


@pytest.fixture
def logdb(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    conn = sqlite3.connect(path)
    ticks = iter(range(1_760_000_000_000, 1_760_000_100_000, 1000))
    log = TransparencyLog(conn, KEY, clock=lambda: next(ticks))
    for k in range(9):
        log.append(hashlib.sha256(b"envelope %d" % k).digest())
        if k in (3, 7):
            log.sign_tree_head()
    conn.commit()
    conn.close()
    return path


def run(*argv: str) -> int:
    return main(["log", *argv])


def test_verify_ok(logdb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("verify", "--db", str(logdb), "--public-key", PUB_HEX) == 0
    out = capsys.readouterr().out
    assert "OK" in out
    assert "leaves        9" in out
    assert "tree heads    2" in out
    assert "size       8" in out
    assert "1 leaf(s) appended after the latest tree head" in out


@pytest.mark.parametrize("form", ["hex-file", "raw-file", "pem-file"])
def test_verify_reads_key_files(logdb: Path, tmp_path: Path, form: str) -> None:
    keyfile = tmp_path / "log.pub"
    if form == "hex-file":
        keyfile.write_text(PUB_HEX + "\n")
    elif form == "raw-file":
        keyfile.write_bytes(PUB_RAW)
    else:
        keyfile.write_bytes(
            KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
    assert run("verify", "--db", str(logdb), "--public-key", str(keyfile)) == 0


def test_verify_detects_removed_leaf(logdb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(logdb)
    conn.execute("DELETE FROM log_leaves WHERE idx = 2")
    conn.commit()
    conn.close()
    assert run("verify", "--db", str(logdb), "--public-key", PUB_HEX) == 1
    err = capsys.readouterr().err
    assert "FAILED (missing-leaf at 2)" in err
    assert "leaf 2 is missing" in err


def test_verify_detects_altered_leaf(logdb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(logdb)
    conn.execute("UPDATE log_leaves SET entry = ? WHERE idx = 5", (b"rewritten",))
    conn.commit()
    conn.close()
    assert run("verify", "--db", str(logdb), "--public-key", PUB_HEX) == 1
    assert "FAILED (altered-leaf at 5)" in capsys.readouterr().err


def test_verify_with_wrong_key_fails(logdb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    hexkey = other.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    assert run("verify", "--db", str(logdb), "--public-key", hexkey) == 1
    assert "bad-signature" in capsys.readouterr().err


def test_verify_unreadable_input(
    logdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("verify", "--db", str(tmp_path / "none.db"), "--public-key", PUB_HEX) == 2
    assert "no such file" in capsys.readouterr().err
    assert run("verify", "--db", str(logdb), "--public-key", "abc") == 2
    assert "neither 64 hex digits nor a readable file" in capsys.readouterr().err
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    assert run("verify", "--db", str(logdb), "--public-key", str(bad)) == 2
    assert "expected 64 hex digits" in capsys.readouterr().err
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert run("verify", "--db", str(empty), "--public-key", PUB_HEX) == 2
    assert "not a psc transparency log" in capsys.readouterr().err


def test_show(logdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("show", "--db", str(logdb)) == 0
    out = capsys.readouterr().out
    assert "leaves        9" in out
    assert "tree heads    2" in out
    assert "size       8" in out
    assert "not verified" in out
    assert run("show", "--db", str(tmp_path / "none.db")) == 2


def test_exit_codes_from_a_real_process(logdb: Path) -> None:
    cmd = [sys.executable, "-m", "psc", "log", "verify", "--db", str(logdb), "--public-key"]
    ok = subprocess.run([*cmd, PUB_HEX], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    conn = sqlite3.connect(logdb)
    conn.execute("UPDATE log_tree_heads SET signature = ? WHERE size = 4", (bytes(64),))
    conn.commit()
    conn.close()
    bad = subprocess.run([*cmd, PUB_HEX], capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "bad-signature at 4" in bad.stderr
