"""Tables of the report and of the benchmark appendix, written as template fields.

Each function takes the :class:`~papers.build.fields.Sources` and returns markdown whose
numbers are ``{{ source:path | format }}`` fields, never literals, so the consistency check
re-reads every cell from the results file it cites.  A cell whose value is missing or null
prints ``-``.  Records that appear later (issue 10's ``threshold-exact`` reveal records)
get rows without any change here: rows follow the records present.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from papers.build.fields import FieldError, Sources, resolve_path

Column = tuple[str, str, str]  # header, key path inside a record, format


def _cell(record: Any, ref: str, key: str, fmt: str) -> str:
    try:
        v = resolve_path(record, key, ref)
    except FieldError:
        return "-"
    if v is None:
        return "-"
    return "{{" + f"{ref}.{key} | {fmt}" + "}}"


def records_table(
    source: str,
    list_path: str,
    columns: Sequence[Column],
    sources: Sources,
    *,
    where: Callable[[dict[str, Any]], bool] | None = None,
) -> str:
    """One row per record of ``source:list_path`` (optionally filtered), one column each."""
    records = resolve_path(sources.load(source), list_path, f"{source}:{list_path}")
    cols = [c for c in columns if any(_has(r, c[1]) for r in records)]
    lines = [
        "| " + " | ".join(h for h, _, _ in cols) + " |",
        "|" + "|".join("---" if f in ("str", "yesno") else "---:" for _, _, f in cols) + "|",
    ]
    for i, r in enumerate(records):
        if where is not None and not where(r):
            continue
        ref = f"{source}:{list_path}[{i}]"
        lines.append("| " + " | ".join(_cell(r, ref, k, f) for _, k, f in cols) + " |")
    return "\n".join(lines) + "\n"


def _has(record: Any, key: str) -> bool:
    try:
        return resolve_path(record, key, key) is not None
    except FieldError:
        return False


def keyed_table(
    source: str, dict_path: str, first: str, columns: Sequence[Column], sources: Sources
) -> str:
    """One row per key of the mapping ``source:dict_path`` (the key in the first column)."""
    mapping = resolve_path(sources.load(source), dict_path, f"{source}:{dict_path}")
    cols = [c for c in columns if any(_has(v, c[1]) for v in mapping.values())]
    lines = [
        "| " + " | ".join([first, *(h for h, _, _ in cols)]) + " |",
        "|---|" + "|".join("---:" for _ in cols) + "|",
    ]
    for key, v in mapping.items():
        ref = f"{source}:{dict_path}.{key}"
        lines.append(
            "| " + " | ".join([f"`{key}`", *(_cell(v, ref, k, f) for _, k, f in cols)]) + " |"
        )
    return "\n".join(lines) + "\n"


AGGREGATE: list[Column] = [
    ("backend", "backend", "str"),
    ("subjects", "subjects", "int"),
    ("measured", "measured_subjects", "int"),
    ("key bits", "key_bits", "str"),
    ("ns per subject-delta", "ns_per_subject_delta", "auto"),
    ("x numpy", "ratio_to_numpy", "auto"),
    ("encrypt us/subject", "encrypt_us_per_subject", "auto"),
    ("decrypt us/subject", "decrypt_us_per_subject", "auto"),
    ("bytes/subject", "bytes_per_subject", "auto"),
]
REVEAL: list[Column] = [
    ("protocol", "protocol", "str"),
    ("mode", "mode", "str"),
    ("subjects", "subjects", "int"),
    ("k", "k", "str"),
    ("n", "n", "str"),
    ("epsilon", "epsilon", "g"),
    ("epsilon charged", "epsilon_total", "g"),
    ("ms/subject", "ms_per_subject", "auto"),
    ("proof ms/subject", "proof_ms_per_subject", "auto"),
    ("verify ms/subject", "verify_ms_per_subject", "auto"),
    ("misgrade rate", "misgrade_rate", "auto"),
]
MISGRADE: list[Column] = [
    ("epsilon", "epsilon", "g"),
    ("subjects", "subjects", "int"),
    ("noise s.d.", "noise_sd", "auto"),
    ("misgrade rate", "misgrade_rate", "auto"),
]
GRADE: list[Column] = [
    ("backend", "backend", "str"),
    ("N", "N", "int"),
    ("log q", "modulus_bits", "int"),
    ("slots", "slots", "int"),
    ("ms/subject", "ms_per_subject", "auto"),
    ("misgrades", "misgrades", "int"),
    ("misgrades flooded", "misgrades_flooded", "int"),
    ("residual max", "residual_max", ".2e"),
    ("bytes/subject", "bytes_per_subject", "auto"),
    ("context bytes", "context_bytes", "int"),
    ("reveal ms", "reveal_ms", "auto"),
]
VALIDITY: list[Column] = [
    ("range", "range", "str"),
    ("digit bits", "digit_bits", "str"),
    ("precompute us/slot", "precompute_us_per_subject", "auto"),
    ("prove us/slot", "prove_online_us_per_subject", "auto"),
    ("verify us/slot", "verify_us_per_subject", "auto"),
    ("proof bytes/slot", "proof_bytes_per_subject", "auto"),
]
COMPLIANCE: list[Column] = [
    ("step", "step", "str"),
    ("PIPL", "pipl", "str"),
    ("seconds", "seconds", "auto"),
    ("x time", "ratio_to_clear.seconds", "auto"),
    ("bytes", "bytes", "int"),
    ("x bytes", "ratio_to_clear.bytes", "auto"),
    ("x memory", "ratio_to_clear.peak_rss_bytes", "auto"),
]
SCALE: list[Column] = [
    ("subjects", "subjects", "int"),
    ("agencies", "agencies", "str"),
    ("periods", "periods", "str"),
    ("total s", "total_seconds", "auto"),
    ("agencies us/subject", "us_per_subject.agencies", "auto"),
    ("aggregator us/subject", "us_per_subject.aggregator", "auto"),
    ("key holder us/subject", "us_per_subject.key_holder", "auto"),
    ("x smallest", "cost_ratio_to_smallest", "auto"),
    ("bytes/subject/period", "bytes_per_subject_period", "auto"),
    ("peak RSS bytes", "peak_rss_bytes", "int"),
]
DASK: list[Column] = [
    ("workers", "workers", "str"),
    ("seconds", "seconds", "auto"),
    ("block products", "block_products", "int"),
    ("per worker-second", "block_products_per_worker_second", "int"),
]
ACCEPTANCE: list[Column] = [
    ("target", "target", "str"),
    ("key bits", "key_bits", "str"),
    ("subjects", "subjects", "int"),
    ("value", "value", "auto"),
    ("threshold", "threshold", "str"),
    ("met", "met", "yesno"),
]


def _env_line(source: str, sources: Sources) -> str:
    doc = sources.load(source)
    key = "env" if "env" in doc else "environment"
    e = f"{source}:{key}"
    parts = [
        "Run {{"
        + e
        + ".timestamp_utc | str}} on {{"
        + e
        + ".cpu_model | str}} ({{"
        + e
        + ".cpu_count | str}} cores), ",
        "Python {{" + e + ".python | str}}",
    ]
    libs = doc[key].get("libraries", {})
    if libs:
        parts.append(
            "; "
            + ", ".join(f"{k} {{{{{e}.libraries.{k} | str}}}}" for k in sorted(libs) if libs[k])
        )
    load = doc[key].get("load_average_1_5_15min")
    if load:
        parts.append(
            "; load average at the start {{"
            + e
            + ".load_average_1_5_15min[0] | .2f}}, {{"
            + e
            + ".load_average_1_5_15min[1] | .2f}}, {{"
            + e
            + ".load_average_1_5_15min[2] | .2f}} (1, 5, 15 min)"
        )
    end = doc[key].get("load_average_at_end")
    if end:
        parts.append(", at the end {{" + e + ".load_average_at_end[0] | .2f}}")
    parts.append("; commit `{{" + e + ".git.commit | str}}`")
    if doc[key].get("git", {}).get("dirty"):
        parts.append(" plus uncommitted work")
    return "".join(parts) + "."


def env_line(source: str) -> Callable[[Sources], str]:
    return lambda s: _env_line(source, s) + "\n"


def _acceptance(source: str, sources: Sources, *, only_missed: bool = False) -> str:
    doc = sources.load(source)
    if "acceptance" in doc:
        if only_missed and all(r.get("met") for r in doc["acceptance"]):
            return ""
        return records_table(
            source,
            "acceptance",
            ACCEPTANCE,
            sources,
            where=(lambda r: not r.get("met")) if only_missed else None,
        )
    if "targets" in doc:  # the validity suite: targets and targets_met by field name
        missed = [k for k in doc["targets"] if not (only_missed and doc["targets_met"][k])]
        if not missed:
            return ""
        lines = ["| target | value | threshold | met |", "|---|---:|---:|---|"]
        for k in missed:
            lines.append(
                f"| `{k}` | {{{{{source}:{k} | auto}}}} | <= {{{{{source}:targets.{k} | g}}}} | {{{{{source}:targets_met.{k} | yesno}}}} |"
            )
        return "\n".join(lines) + "\n"
    return ""


def appendix_section(source: str, sources: Sources) -> str:
    """One results file as readable tables: environment, parameters' tables, acceptance."""
    doc = sources.load(source)
    suite = doc.get("suite", source)
    out = [
        f"### `benchmarks/results/{source}.json` (suite `{suite}`)",
        "",
        _env_line(source, sources),
        "",
    ]
    if suite == "aggregate":
        out.append(records_table(source, "results", AGGREGATE, sources))
    elif suite == "reveal":
        out.append(records_table(source, "results", REVEAL, sources))
        if "misgrade_curve" in doc:
            out += [
                "Misgrade rate against epsilon (noisy grade against the noiseless reference scorer):",
                "",
                records_table(source, "misgrade_curve", MISGRADE, sources),
            ]
    elif suite == "grade":
        out.append(records_table(source, "results", GRADE, sources))
    elif suite == "validity":
        out.append(keyed_table(source, "techniques", "technique", VALIDITY, sources))
        out.append(
            "Plaintext knowledge only (the floor): prove {{"
            + source
            + ":plaintext_knowledge_only.prove_online_us_per_subject | auto}} us, verify {{"
            + source
            + ":plaintext_knowledge_only.verify_us_per_subject | auto}} us, {{"
            + source
            + ":plaintext_knowledge_only.proof_bytes_per_subject | auto}} bytes per slot. "
            "Ingest of one {{"
            + source
            + ":ingest.agency | str}} envelope ({{"
            + source
            + ":ingest.envelope_bytes | int}} bytes): {{"
            + source
            + ":ingest.ingest_ms_with_verification | auto}} ms with verification, {{"
            + source
            + ":ingest.ingest_ms_without_verification | auto}} ms without.\n"
        )
    elif suite == "compliance":
        out.append(records_table(source, "steps", COMPLIANCE, sources))
    elif suite == "scale":
        out.append(records_table(source, "end_to_end", SCALE, sources))
        out += [
            "Dask strong scaling ({{"
            + source
            + ":dask.subjects | int}} subjects, {{"
            + source
            + ":dask.scheduler | str}}); efficiency {{"
            + source
            + ":dask.efficiency | .2f}}, the machine's own two-process efficiency in the same run {{"
            + source
            + ":dask.machine_control.efficiency | .2f}}:",
            "",
            records_table(source, "dask.runs", DASK, sources),
        ]
    acc = _acceptance(source, sources)
    if acc:
        out += ["Acceptance checks recorded by the suite:", "", acc]
    return "\n".join(out) + "\n"


def result_names(sources: Sources) -> list[str]:
    """The results files present, by name without ``.json``."""
    return sorted(p.stem for p in sources.results.glob("*.json"))


def appendix(sources: Sources) -> str:
    """Every results file present, one section each."""
    return "\n".join(appendix_section(name, sources) for name in result_names(sources))


def _anchors_table(sources: Sources) -> str:
    doc = sources.load("anchors")
    lines = ["| published figure | value | unit | source |", "|---|---:|---|---|"]
    for key, a in doc.items():
        if a.get("kind") != "benchmark":
            continue
        lines.append(
            f"| {a['what']} | {{{{anchors:{key}.value | g}}}} | {a['unit']} | {a['cite']} |"
        )
    return "\n".join(lines) + "\n"


def _missed_all(sources: Sources) -> str:
    """Every acceptance line, across results files, that its run did not meet."""
    lines: list[str] = []
    for name in result_names(sources):
        acc = _acceptance(name, sources, only_missed=True)
        if acc:
            lines += [f"`{name}.json`:", "", acc]
    return "\n".join(lines)


TABLES: dict[str, Callable[[Sources], str]] = {
    "aggregate-quick": lambda s: records_table("aggregate-quick", "results", AGGREGATE, s),
    "aggregate-full": lambda s: records_table(
        "aggregate-full", "results", AGGREGATE, s, where=lambda r: r.get("subjects") == 1_000_000
    ),
    "reveal-quick": lambda s: records_table("reveal-quick", "results", REVEAL, s),
    "misgrade-quick": lambda s: records_table("reveal-quick", "misgrade_curve", MISGRADE, s),
    "grade-quick": lambda s: records_table("grade-quick", "results", GRADE, s),
    "validity-quick": lambda s: keyed_table(
        "validity-quick", "techniques", "technique", VALIDITY, s
    ),
    "compliance-quick": lambda s: records_table("compliance-quick", "steps", COMPLIANCE, s),
    "scale-full": lambda s: records_table("scale-full", "end_to_end", SCALE, s),
    "anchors": _anchors_table,
    "missed": _missed_all,
    **{
        f"env-{n}": env_line(n)
        for n in (
            "aggregate-quick",
            "aggregate-full",
            "reveal-quick",
            "grade-quick",
            "validity-quick",
            "compliance-quick",
            "scale-full",
        )
    },
}
