"""Markdown report and plot of a demo run (:class:`psc.sim.results.RunResult`).

Writes ``report.md`` and ``grades.png`` (matplotlib, Agg backend: no display needed) into
an output directory.  The report states parameters (key bits, slot layout, sizes) next to
every time, as benchmarks in psc must.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psc.sim.results import RunResult


def _fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def plot(result: RunResult, path: Path) -> Path:
    """Grade distribution (revealed vs oracle, log scale) and time per phase, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(result.grades)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    x = range(len(labels))
    ax1.bar([i - 0.2 for i in x], [max(result.grades[k], 0) for k in labels], 0.4, label="revealed")
    ax1.bar([i + 0.2 for i in x], [result.oracle_grades[k] for k in labels], 0.4, label="oracle")
    ax1.set_xticks(list(x), labels)
    ax1.set_yscale("symlog")
    ax1.set_ylim(0, 3 * max(1, *result.grades.values(), *result.oracle_grades.values()))
    ax1.set_ylabel("subjects")
    ax1.set_title(f"Grades at {result.evaluation_period} ({result.subjects:,} subjects)")
    ax1.legend()
    names = list(result.phase_seconds)
    ax2.barh(names, [result.phase_seconds[n] for n in names])
    ax2.invert_yaxis()
    ax2.set_xlabel("seconds")
    ax2.set_title(f"Time per phase ({result.key_bits}-bit Paillier, {result.agencies} agencies)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(result: RunResult, image: str | None = "grades.png") -> str:
    """The report text."""
    r = result
    lines = [
        "# psc demo report",
        "",
        f"One synthetic city, {r.subjects:,} subjects, {r.agencies} agencies, {r.periods} "
        f"periods ({r.events:,} events); grades evaluated at the close of {r.evaluation_period}.",
        "",
        f"**Grades match the oracle: {'yes' if r.grades_match_oracle else 'NO'}** "
        f"(compared with: {r.grades_compared_with}; {r.mismatches} mismatches; "
        f"{r.access_consistent}/{r.access_checked} subjects' access answers verified and "
        f"consistent with {r.access_compared_with}; a relying party got grade "
        f"{r.relying_party_grade}; log verified: {'yes' if r.log_verified else 'NO'}).",
        "",
        *_reveal_lines(r),
        "## Parameters",
        "",
        "| parameter | value |",
        "|---|---|",
        f"| Paillier key | {r.key_bits} bits (3072 is the secure default) |",
        f"| slot layout | {r.slot_bits}-bit slots, {r.slots_per_ciphertext} per ciphertext |",
        f"| ciphertext blocks encrypted | {r.ciphertext_blocks:,} |",
        f"| envelopes | {r.envelopes} |",
        f"| log size | {r.log_size} entries |",
        f"| machine | {platform.machine()}, Python {platform.python_version()} |",
        "",
        "## Grade distribution",
        "",
        "| grade | revealed | oracle |",
        "|---|---:|---:|",
        *(f"| {k} | {r.grades[k]:,} | {r.oracle_grades[k]:,} |" for k in r.grades),
        "",
        "## Time per phase",
        "",
        "| phase | seconds |",
        "|---|---:|",
        *(f"| {k} | {v:.3f} |" for k, v in r.phase_seconds.items()),
        f"| **total** | {sum(r.phase_seconds.values()):.3f} |",
        "",
        "## Bytes on the wire",
        "",
        "| message | bytes |",
        "|---|---:|",
        *(f"| {k} | {_fmt_bytes(v)} |" for k, v in sorted(r.bytes_by_message.items())),
        f"| **total** | {_fmt_bytes(sum(r.bytes_by_message.values()))} |",
        "",
    ]
    if image:
        lines += [f"![grades and phases]({image})", ""]
    if r.he is not None:
        lines += _he_lines(r)
    if r.notes:
        lines += ["## Notes", "", *(f"- {n}" for n in r.notes), ""]
    return "\n".join(lines)


def _reveal_lines(r: RunResult) -> list[str]:
    """The reveal paragraph: who decrypted, and for the committee what privacy it cost."""
    if r.he is not None:
        h = r.he
        return [
            "Reveal: one trusted key holder decrypted the Paillier sums (exact, no DP); then "
            f"the same events were **graded under CKKS encryption** ({h.profile}) and only "
            f"masked, flooded grades were decrypted: {h.mismatches} CKKS mismatches and "
            f"{h.paillier_mismatches} Paillier mismatches against the oracle; CKKS and "
            f"Paillier agree on every subject: {'yes' if h.grades_match_paillier else 'NO'}; "
            f"{h.ms_per_subject:.3f} ms per subject; checks passed: {'yes' if r.ok else 'NO'}.",
            "",
        ]
    if r.reveal != "committee":
        return ["Reveal: one trusted key holder decrypted whole blocks (exact, no DP).", ""]
    return [
        f"Reveal: a **{r.committee_k}-of-{r.committee_n} key committee** decrypted score + "
        f"distributed noise ({r.mechanism}, honest = {r.committee_honest}): "
        f"**epsilon spent per subject {r.epsilon_spent:g}** (delta {r.delta_spent:.3g}; "
        f"epsilon {r.epsilon_per_release} per subject and period ({r.epsilon_breakdown}), "
        f"budget {r.budget_epsilon:g}). "
        "Grades are noisy by design, and checked exactly: every revealed grade equals the "
        "oracle's grade of the subject's raw score plus the noise the members actually drew "
        "(recorded by the simulation's god view, which no protocol party reads; "
        f"{r.noise_witnessed:,} subjects' noise witnessed). Against the noiseless oracle: "
        f"misgrade rate {r.misgrade_rate_vs_noiseless_oracle:.4f}, "
        f"{r.expected_misgrade_rate:.4f} predicted by the noise; checks passed: "
        f"{'yes' if r.ok else 'NO'}.",
        "",
    ]


def _he_lines(r: RunResult) -> list[str]:
    """The CKKS run: parameters next to its times, and what each party saw."""
    h = r.he
    assert h is not None
    seen = [
        line
        for party, items in h.seen.items()
        for line in [f"- **{party}**", *(f"  - {x}" for x in items)]
    ]
    return [
        "## Homomorphic grading (CKKS)",
        "",
        "| parameter | value |",
        "|---|---|",
        f"| profile | {h.profile} |",
        f"| ring dimension N | {h.ring_dimension:,} ({h.slots:,} slots per part, "
        f"{h.parts} part(s)) |",
        f"| modulus | {h.modulus_bits} bits ({', '.join(map(str, h.coeff_bits))}); "
        f"HE standard bound for 128-bit security: {h.modulus_bound_bits} |",
        f"| scale, levels | 2^{h.scale_bits}, {h.levels} |",
        f"| sign composites | band {h.band_composite}, cap {h.cap_composite} |",
        f"| flooding sigma | {h.flood_sigma} |",
        f"| public context (relinearization keys) | {_fmt_bytes(h.context_bytes)} |",
        f"| submissions | {h.score_submissions} score + {h.cap_submissions} cap-counter "
        f"ciphertexts, {_fmt_bytes(h.submission_bytes)} ({h.bytes_per_subject:,.0f} bytes "
        "per subject) |",
        f"| grade queries decrypted | {h.queries} |",
        *(f"| {k} | {v:.3f} s |" for k, v in h.seconds.items()),
        f"| **ms per subject** (circuit, all bands and caps, + decryption) | "
        f"{h.ms_per_subject:.3f} |",
        f"| mismatches (CKKS vs oracle, Paillier vs oracle) | {h.mismatches}, "
        f"{h.paillier_mismatches} |",
        "",
        "## What each party saw",
        "",
        *seen,
        "",
    ]


def write_report(result: RunResult, out_dir: str | Path) -> Path:
    """Write ``report.md`` and ``grades.png`` into ``out_dir`` (created); the report's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot(result, out / "grades.png")
    path = out / "report.md"
    path.write_text(markdown(result), encoding="utf-8")
    return path
