"""The validity benchmark runs end to end on a small insecure key and reports every field."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import validity


def test_quick_run_writes_every_field(tmp_path: Path) -> None:
    out = tmp_path / "v.json"
    code = validity.main(["--key-bits", "512", "--subjects", "20", "--json", str(out), "--quiet"])
    assert code == 0
    doc = json.loads(out.read_text())
    for key in ("prove_us_per_subject", "verify_us_per_subject", "proof_bytes_per_subject"):
        assert doc[key] > 0 and key in doc["targets_met"]
    assert set(doc["techniques"]) == {t[0] for t in validity.TECHNIQUES}
    for t in doc["techniques"].values():
        assert t["prove_us_per_subject_without_precomputation"] >= t["prove_online_us_per_subject"]
    ing = doc["ingest"]
    assert ing["ingest_ms_with_verification"] > 0 and ing["ingest_ms_without_verification"] > 0
    assert doc["parameters"]["key_bits"] == 512 and doc["environment"]


def test_bad_arguments_exit_2() -> None:
    assert validity.main(["--subjects", "0"]) == 2
