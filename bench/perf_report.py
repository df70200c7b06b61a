"""Renders the ``## Performance (issue 9)`` section of BENCHMARKS.md from
``bench/results/performance.json`` (every part: unary, watch, jobs, durability).

Run on its own to re-render: ``.venv/bin/python -m bench.perf_report``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SECTION = "## Performance (issue 9)"
ANALYSIS = Path(__file__).with_name("perf_analysis.md")  # hand-written, kept as is


def _ms(x: float) -> str:
    return f"{x:.1f} ms" if x < 100 else f"{x:.0f} ms"


def _verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def verdicts(data: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(target, measured, limit, met) for every target that has a measurement."""
    rows: list[tuple[str, str, str, bool]] = []
    unary = data.get("unary", {})
    for db, label in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        r = unary.get(db)
        if not r or "ratios" not in r:
            continue
        for key, issue in (("c/a", "9"), ("c/b", "6"), ("c/d", "7")):
            x = r["ratios"][key]
            rows.append(
                (
                    f"GetJob {key} ({label}; issue {issue})",
                    f"{x['paired_median']:.2f} (CPU/call: {x['cpu']:.2f})",
                    f">= {x['target']}",
                    x["paired_median"] >= x["target"],
                )
            )
        if lat := r.get("latency_half_load"):
            rows.append(
                (
                    f"GetJob p99 at half load ({label}, {lat['rate_per_s']:.0f} calls/s)",
                    _ms(lat["p99_ms"]),
                    f"< {lat['limit_ms']:.0f} ms",
                    lat["p99_ms"] < lat["limit_ms"],
                )
            )
    if w := data.get("watch"):
        n = w["streams"]
        rows.append(
            (
                f"WatchJob x{n}: streams that got every event",
                f"{w['streams_with_every_event']}/{n}",
                f"{n}/{n}",
                w["streams_with_every_event"] == n,
            )
        )
        d, m = w["delay_ms"], w["server_rss_mb"]
        rows.append(
            (
                f"WatchJob x{n}: p99 commit -> delivery",
                _ms(d["p99"]),
                f"< {d['limit_p99']:.0f} ms",
                d["p99"] < d["limit_p99"],
            )
        )
        rows.append(
            (
                f"WatchJob x{n}: server RSS growth",
                f"{m['growth']:.1f} MB",
                f"< {m['limit_growth']:.0f} MB",
                m["growth"] < m["limit_growth"],
            )
        )
    jobs = data.get("jobs", {})
    if mem := jobs.get("memory"):
        idle = mem["idle"]["rss_mb"]
        rows.append(("Idle server RSS", f"{idle:.0f} MB", "< 80 MB", idle < 80))
        four = mem.get("four_jobs") or {}
        if four.get("at_full") is not None:
            rows.append(
                (
                    "Server RSS with 4 jobs running (children excluded)",
                    f"{four['at_full']:.0f} MB (peak {four['peak_at_full']:.0f})",
                    "< 250 MB",
                    four["peak_at_full"] < 250,
                )
            )
    for c, r in jobs.get("throughput", {}).items():
        rows.append(
            (
                f"Jobs at concurrency {c}: service overhead per job",
                f"{r['overhead'] * 100:+.1f}% ({r['service']['jobs_per_min']:.1f} vs "
                f"{r['bare']['jobs_per_min']:.1f} jobs/min)",
                "< 10%",
                r["overhead"] < 0.10,
            )
        )
    if loop := jobs.get("event_loop"):
        p = loop["probe"]
        slow = p["slow_calls"]
        detail = (
            f"{len(slow)} ran 50 ms or longer, CPU at most {p['longest_callback_cpu_ms']:.1f} ms"
            if slow
            else f"none of {p['callbacks']} callbacks ran 50 ms"
        )
        rows.append(
            (
                "Event loop during 2 jobs: blocking callbacks >= 50 ms",
                f"{p['blocking_over_50ms']} ({detail})",
                "0",
                p["blocking_over_50ms"] == 0,
            )
        )
    if dur := data.get("durability"):
        lat, claims = dur["event_latency"], dur["claims"]
        rows.append(
            (
                f"Cross-replica event latency, PostgreSQL (issue 5; {lat['events']} events)",
                f"p99 {_ms(lat['p99_ms'])} (p50 {_ms(lat['p50_ms'])}; claims "
                f"{claims['claims_per_second']:.0f}/s by {claims['replicas']} replicas, "
                "none twice)",
                f"< {lat['limit_p99_ms']:.0f} ms",
                lat["p99_ms"] < lat["limit_p99_ms"],
            )
        )
    return rows


def _unary(r: dict[str, Any], label: str) -> list[str]:
    rows = [
        f"GetJob, {label}: response {r['response_bytes']} bytes; chain (c): "
        f"{' -> '.join(r['chains']['c'])}; (d): {' -> '.join(r['chains']['d'])}.",
        "",
        "| variant | calls/s (median) | samples | server CPU per call | vs (a) |",
        "|---|---|---|---|---|",
    ]
    a = r["variants"]["a"]["calls_per_s"]
    for v, x in r["variants"].items():
        rows.append(
            f"| ({v}) {x['name']} | {x['calls_per_s']:.0f} | "
            f"{', '.join(str(s) for s in x['samples'])} | "
            f"{x['server_cpu_us_per_call']:.0f} us | {x['calls_per_s'] / a:.2f} |"
        )
    if lat := r.get("latency_half_load"):
        rows += [
            "",
            f"Open loop on (c) at half its throughput ({lat['rate_per_s']:.0f} calls/s): "
            f"p50 {_ms(lat['p50_ms'])}, p99 {_ms(lat['p99_ms'])} (per round: "
            f"{', '.join(str(x) for x in lat['p99_samples_ms'])} ms), max {_ms(lat['max_ms'])}.",
        ]
    if prof := r.get("profile_c"):
        ours = [f for f in prof if "server/" in f["frame"]][:8]
        rows += [
            "",
            "py-spy (GIL holder, 200 Hz) on the server process under load on (c), inclusive "
            "share of samples: "
            + "; ".join(f"{f['frame']} {f['inclusive_pct']:.0f}%" for f in ours)
            + ". The rest is grpc's own Cython code (shown as `Handle._run`) and asyncio.",
        ]
    return rows


def _watch(w: dict[str, Any]) -> list[str]:
    d, m = w["delay_ms"], w["server_rss_mb"]
    rows = [
        f"{w['streams']} WatchJob streams ({w['watcher_processes']} watcher processes, "
        f"{w['connections']} HTTP/2 connections) on one job, opened in {w['connect_s']:.1f} s; "
        f"{w['events_per_stream']} live events each ({w['deliveries']} deliveries), ends "
        f"{w['end_codes']}. Delay commit -> arrival: p50 {_ms(d['p50'])}, p90 {_ms(d['p90'])}, "
        f"p99 {_ms(d['p99'])}, max {_ms(d['max'])}. Server RSS {m['before_streams']:.0f} MB "
        f"before the streams, {m['streams_open']:.0f} MB with them open, peak {m['peak']:.0f} MB "
        f"({m['growth_per_stream_kb']:.0f} KB per stream). Server CPU per delivered event "
        f"(the job's own work included): {w['server_cpu_us_per_delivery']:.0f} us.",
        "",
        "| event seq | p50 delay | max delay |",
        "|---|---|---|",
    ]
    for seq, x in w.get("delay_by_seq_ms", {}).items():
        rows.append(f"| {seq} | {_ms(x['p50'])} | {_ms(x['max'])} |")
    if gc := (w.get("loop_probe") or {}).get("gc"):
        rows += [
            "",
            "Garbage collector during the run (from the probe): "
            + "; ".join(
                f"gen {g}: {x['collections']} collections, longest {_ms(x['max_ms'])}"
                for g, x in gc.items()
            )
            + ".",
        ]
    return rows


def _jobs(j: dict[str, Any]) -> list[str]:
    rows = [
        "| concurrency | jobs | service jobs/min | bare tools jobs/min | ratio | overhead | "
        "job wall (median) | its sandboxed tools | bare tools per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c, r in j.get("throughput", {}).items():
        s, b = r["service"], r["bare"]
        rows.append(
            f"| {c} | {s['jobs']} | {s['jobs_per_min']:.2f} | {b['jobs_per_min']:.2f} | "
            f"{r['ratio']:.2f} | {r['overhead'] * 100:+.1f}% | {s['job_s']['median']:.1f} s | "
            f"{s['sandboxed_tools_s']['median']:.1f} s | {b['tools_s']['median']:.1f} s |"
        )
    if mem := j.get("memory"):
        idle, imp = mem["idle"], mem["imports"]
        rows += [
            "",
            f"Idle RSS (`python -m server`, template only, SQLite): {idle['rss_mb']:.0f} MB "
            f"({idle['anon_mb']:.0f} MB anonymous, {idle['file_mb']:.0f} MB mapped files). "
            "Import cost of each part, whether the idle server loads it or not (RSS "
            f"growth in a fresh interpreter of {imp['python_mb']:.0f} MB, in this order): "
            + "; ".join(f"{name} +{mb:.0f} MB" for name, mb in imp["groups"])
            + f"; total {imp['total_mb']:.0f} MB.",
        ]
        if four := mem.get("four_jobs"):
            rows.append(
                f"With 4 jobs RUNNING ({four['full_samples']} samples at 10 Hz): median "
                f"{four['at_full']:.0f} MB, peak {four['peak_at_full']:.0f} MB."
            )
    for key, label in (
        ("event_loop", "as built (commands niced)"),
        ("event_loop_nice0_what_if", "what-if, the commands at the server's priority"),
    ):
        if loop := j.get(key):
            rows += ["", _loop(loop, label)]
    return rows


def _loop(loop: dict[str, Any], label: str) -> str:
    p, t, g = loop["probe"], loop["probe"]["timer"], loop["getjob_ms"]
    return (
        f"Event loop with {loop['jobs']} jobs at concurrency {loop['concurrency']}, {label}: "
        f"{p['callbacks']} callbacks timed; >= 50 ms: {p['blocking_over_50ms']} blocking, "
        f"{p['preempted_over_50ms']} preempted (the kernel ran something else; their own "
        f"CPU stayed short); 10 ms timer lateness p99 {_ms(t['p99_lag_ms'])}, max "
        f"{_ms(t['max_lag_ms'])}. GetJob every 50 ms meanwhile: running job p50 "
        f"{_ms(g['running']['p50'])} / p99 {_ms(g['running']['p99'])} / max "
        f"{_ms(g['running']['max'])}; finished job p50 {_ms(g['finished']['p50'])} / p99 "
        f"{_ms(g['finished']['p99'])} / max {_ms(g['finished']['max'])}."
    )


def render(data: dict[str, Any]) -> str:
    out = [
        SECTION,
        "",
        "Produced by `make bench`; every number and sample is in "
        "`bench/results/performance.json`. Medians; ratios are measured side by side in one "
        "run (variants interleaved). The machine has 2 cores and is shared with other work: "
        "the load average is recorded per part.",
        "",
    ]
    for key in ("unary", "watch", "jobs", "durability"):
        if part := data.get(key):
            m = part["machine"]
            out.append(
                f"- `{part['command']}` ({part['date']}; {m['nproc']} x {m['cpu']}, Python "
                f"{m['python']}; load average (1, 5, 15 min) at the start "
                f"{m.get('loadavg_at_start')}, at the end {m['loadavg']})"
            )
    out += ["", "| target | measured | limit | verdict |", "|---|---|---|---|"]
    out += [f"| {t} | {x} | {lim} | {_verdict(ok)} |" for t, x, lim, ok in verdicts(data)]
    unary = data.get("unary", {})
    for db, label in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        if (r := unary.get(db)) and "variants" in r:
            out += ["", f"### Unary GetJob: {label}", "", *_unary(r, label)]
    if w := data.get("watch"):
        out += ["", "### WatchJob fan-out", "", *_watch(w)]
    if j := data.get("jobs"):
        out += ["", "### Jobs: throughput, memory, event loop", "", *_jobs(j)]
    if ANALYSIS.exists():
        out += ["", ANALYSIS.read_text().strip()]
    return "\n".join(out) + "\n"


def write_markdown(data: dict[str, Any], path: Path) -> None:
    """Replace this section of ``path`` (up to the next ``## `` heading), keeping the rest."""
    from bench.perf_common import replace_section

    replace_section(path, SECTION, render(data))


def main() -> None:
    from bench.perf_common import MARKDOWN, RESULTS

    write_markdown(json.loads(RESULTS.read_text()), MARKDOWN)


if __name__ == "__main__":
    main()
