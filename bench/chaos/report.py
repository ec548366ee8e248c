"""What a run prints: one seed's report, and the summary table of all seeds."""

from __future__ import annotations

from bench.chaos.outcome import Options, Outcome


def report(outcome: Outcome) -> str:
    lines = [
        f"seed {outcome.seed}: {outcome.verdict()} — {outcome.kills} kills, {outcome.restarts_after_error} restarts "
        f"after an error, {outcome.applied} entries applied ({outcome.drained} drained), {outcome.acked} writes "
        f"acknowledged, {outcome.refused} refused, {outcome.ambiguous} ambiguous, {outcome.seconds:.1f} s; "
        f"straggler: {outcome.straggler or '-'}"
    ]
    lines += [f"  error: {e}" for e in dict.fromkeys(outcome.errors)]
    lines += [f"  problem: {p}" for p in outcome.problems]
    lines += [f"  note: {n}" for n in outcome.notes]
    lines += [f"  differs: {d}" for d in outcome.differences]
    lines += [f"    {s}" for s in outcome.samples]
    lines += [f"  leftover: {x}" for x in outcome.leftovers]
    lines += [f"  writer error: {e}" for e in sorted(set(outcome.unexpected_writer_errors))[:10]]
    lines.append("  writes: " + ", ".join(f"{k} {v}" for k, v in outcome.ops.most_common()))
    lines.append("  refused: " + ", ".join(f"{k} {v}" for k, v in outcome.refused_by.most_common()))
    return "\n".join(lines)


def summary(outcomes: list[Outcome], opts: Options, machine: str) -> str:
    lines = [
        f"`bench/capture_chaos.py`, {opts.writers} writers, {opts.seconds:.0f} s, {opts.kills} kills a seed, "
        f"target role {opts.target_role}"
        + (f", without {', '.join(opts.without)}" if opts.without else "")
        + f"; {machine}",
        "",
        "| seed | outcome | kills | entries applied | acked writes | missing | seconds | ferry error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        err = next(iter(o.errors), "") or next(iter(o.problems), "")
        lines.append(
            f"| {o.seed} | {o.verdict()} | {o.kills} | {o.applied} | {o.acked} | {o.missing_acked} | "
            f"{o.seconds:.0f} | {err[:160].replace('|', '/')} |"
        )
    ok = sum(o.ok for o in outcomes)
    lines.append("")
    lines.append(f"{ok} of {len(outcomes)} seeds identical.")
    return "\n".join(lines)
