#!/usr/bin/env python3
"""Idle memory of a real `herald serve`, against a bare Quart app measured in the same run.

Each server runs in its own process, started as `herald serve` starts (the same
`appliance.cli.main(["serve"])`, SQLite under a fresh data directory, one process), on a port
of 127.0.0.1. Once `/healthz` answers, and again after --idle seconds of nothing, the script
reads the process's /proc/<pid>/smaps_rollup:

- RSS, what the Pi image's boot test checks (tests/deploy/test_pi_image.py: under 120 MiB);
- PSS, RSS with shared pages divided among the processes that share them;
- USS (Private_Clean + Private_Dirty), what the process alone holds: freed if it stopped.

The baseline is a bare Quart app under hypercorn in the same interpreter (one JSON route),
measured the same way, so that the ratio carries to another machine (the Pi is arm64).

Then the server is asked (SIGUSR1, handled by the small runner this script starts it with)
for what it imported: the module count, and the top-level packages by module count. With
--tracemalloc FRAMES the server runs under tracemalloc from its first line (memory figures
inflated by the tracing itself; they are not printed as the run's figures) and the answer
also holds the largest allocations still live at idle, by traceback.

With --compare REV, the same is measured for a checkout of REV (a temporary git worktree,
removed at the end), the two alternating --runs times, and the ratios after/before printed:

    .venv/bin/python scripts/bench_memory.py [--idle 20] [--runs 2] [--compare REV] [--json]
    .venv/bin/python scripts/bench_memory.py --tracemalloc 12 --runs 1

Figures are written to docs/benchmarks.md by hand ("Idle memory of `herald serve`").
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_ingest import free_port, start_bare, stop, wait_for  # noqa: E402  (the bare app, as there)

# Packages that only some deployments use: listed when the idle server has imported them.
WATCHED = ("ask_sdk_model", "ask_sdk_core", "skill", "aiomqtt", "paho", "asyncpg", "playwright",
           "octoprint", "flask", "aiohttp", "authlib", "cryptography", "pydantic", "tortoise")

# The runner Herald starts with. It puts the checkout first on sys.path, answers SIGUSR1 by writing
# what the process imported (and, under tracemalloc, its largest live allocations) to the file
# named in BENCH_MEMORY_REPORT, then runs Herald's own command line, `herald serve`.
RUNNER = r'''
import os, signal, sys, json
sys.path.insert(0, os.environ["BENCH_MEMORY_SOURCE"])
frames = int(os.environ.get("BENCH_MEMORY_TRACEMALLOC") or 0)
if frames:
    import tracemalloc
    tracemalloc.start(frames)

def report(_signum, _frame):
    modules = sorted(sys.modules)
    answer = {"modules": modules}
    if frames:
        import gc
        gc.collect()
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        answer["traced_bytes"] = sum(stat.size for stat in snapshot.statistics("filename"))
        by_file = snapshot.statistics("filename")[:25]
        answer["top_files"] = [[stat.size, stat.count, stat.traceback[0].filename] for stat in by_file]
        answer["top_tracebacks"] = [
            [stat.size, stat.count, [f"{f.filename}:{f.lineno}" for f in stat.traceback]]
            for stat in snapshot.statistics("traceback")[:15]]
    with open(os.environ["BENCH_MEMORY_REPORT"], "w") as out:
        json.dump(answer, out)

signal.signal(signal.SIGUSR1, report)
from appliance.cli import main
sys.exit(main(["serve"]))
'''


def smaps_kib(pid: int) -> dict[str, int]:
    """The process's smaps_rollup fields, in KiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return fields


def figures_mib(pid: int) -> dict[str, float]:
    rollup = smaps_kib(pid)
    return {
        "rss": rollup["Rss"] / 1024,
        "pss": rollup["Pss"] / 1024,
        "uss": (rollup["Private_Clean"] + rollup["Private_Dirty"]) / 1024,
        "anon": rollup["Anonymous"] / 1024,
    }


def measure(kind: str, source: Path, idle: float, tracemalloc_frames: int = 0) -> dict:
    """Start one server (``herald`` or ``bare``), read its memory at start and after ``idle`` s."""
    with tempfile.TemporaryDirectory(prefix="herald-bench-memory-") as tmp:
        work = Path(tmp)
        port = free_port()
        report_file = work / "report.json"
        if kind == "bare":  # bench_ingest's bare Quart app: one route, same hypercorn
            process = start_bare(work, port)
            url = f"http://127.0.0.1:{port}/api/v1/printer/status"
        else:
            env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
            env.update({
                "HERALD_DATA_DIR": str(work / "data"), "HERALD_HOST": "127.0.0.1", "HERALD_PORT": str(port),
                "BENCH_MEMORY_SOURCE": str(source), "BENCH_MEMORY_REPORT": str(report_file),
                "BENCH_MEMORY_TRACEMALLOC": str(tracemalloc_frames or ""),
            })
            env.pop("PYTHONTRACEMALLOC", None)
            with (work / "server.log").open("w") as log_file:
                process = subprocess.Popen([sys.executable, "-c", RUNNER], cwd=work, env=env,
                                           stdout=log_file, stderr=subprocess.STDOUT)
            url = f"http://127.0.0.1:{port}/healthz"
        try:
            try:
                wait_for(url, timeout=600.0 if tracemalloc_frames else 120.0)
            except RuntimeError as exc:
                log = work / "server.log"
                raise SystemExit(f"{kind} did not start:\n{log.read_text()[-3000:] if log.exists() else ''}") from exc
            at_start = figures_mib(process.pid)
            time.sleep(idle)
            at_idle = figures_mib(process.pid)
            report: dict = {}
            if kind == "herald":
                process.send_signal(signal.SIGUSR1)
                deadline = time.monotonic() + 60
                while not report:
                    if time.monotonic() > deadline:
                        raise SystemExit("Herald did not answer SIGUSR1")
                    time.sleep(0.2)
                    try:
                        report = json.loads(report_file.read_text())
                    except (OSError, ValueError):  # not written yet, or not to its end
                        report = {}
        finally:
            stop(process)
    return {"start": at_start, "idle": at_idle, **report}


def package_counts(modules: list[str]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for name in modules:
        top = name.split(".")[0]
        counts[top] = counts.get(top, 0) + 1
    return sorted(counts.items(), key=lambda item: -item[1])


def watched_imported(modules: list[str]) -> list[str]:
    return [p for p in WATCHED if any(m == p or m.startswith(p + ".") for m in modules)]


def checkout(rev: str, into: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), rev],
                   check=True, capture_output=True)
    return into


def remove_checkout(path: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                   check=False, capture_output=True)


def median(runs: list[dict], moment: str, figure: str) -> float:
    return statistics.median(run[moment][figure] for run in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds idle before the second reading")
    parser.add_argument("--runs", type=int, default=2, help="servers started per variant (medians printed)")
    parser.add_argument("--compare", metavar="REV", help="also measure this git revision (before/after)")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                        help="run Herald under tracemalloc and print its largest live allocations")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    variants: dict[str, Path] = {"herald": ROOT}
    scratch = None
    if args.compare:
        scratch = Path(tempfile.mkdtemp(prefix="herald-bench-memory-rev-"))
        variants = {f"herald@{args.compare}": checkout(args.compare, scratch / "tree"), "herald": ROOT}
    results: dict[str, list[dict]] = {"bare": [], **{name: [] for name in variants}}
    try:
        for _ in range(args.runs):  # alternate, so every variant sees the same machine
            results["bare"].append(measure("bare", ROOT, args.idle))
            for name, source in variants.items():
                results[name].append(measure("herald", source, args.idle, args.tracemalloc))
    finally:
        if scratch is not None:
            remove_checkout(scratch / "tree")

    summary = {name: {moment: {figure: round(median(runs, moment, figure), 1)
                               for figure in ("rss", "pss", "uss", "anon")}
                      for moment in ("start", "idle")}
               | {"modules": len(runs[-1].get("modules", ()))}
               for name, runs in results.items()}
    for name in variants:
        summary[name]["watched_imported"] = watched_imported(results[name][-1]["modules"])
    if args.json:
        print(json.dumps(summary))
        return 0

    traced = " (under tracemalloc: inflated)" if args.tracemalloc else ""
    print(f"Idle memory, MiB, median of {args.runs} run(s), {args.idle:.0f} s idle{traced}")
    print(f"{'server':<24}{'RSS start':>10}{'RSS idle':>10}{'PSS idle':>10}{'USS idle':>10}"
          f"{'modules':>9}{'RSS/bare':>10}")
    bare_rss = summary["bare"]["idle"]["rss"]
    for name, row in summary.items():
        print(f"{name:<24}{row['start']['rss']:>10.1f}{row['idle']['rss']:>10.1f}{row['idle']['pss']:>10.1f}"
              f"{row['idle']['uss']:>10.1f}{row['modules'] or '':>9}{row['idle']['rss'] / bare_rss:>10.2f}")
    if args.compare:
        before, after = summary[f"herald@{args.compare}"]["idle"], summary["herald"]["idle"]
        print(f"after/before at idle: RSS {after['rss'] / before['rss']:.3f}, "
              f"PSS {after['pss'] / before['pss']:.3f}, USS {after['uss'] / before['uss']:.3f}")
    for name in variants:
        modules = results[name][-1]["modules"]
        present = watched_imported(modules)
        print(f"\n{name}: top-level packages by modules imported at idle:")
        print("  " + ", ".join(f"{top} {count}" for top, count in package_counts(modules)[:20]))
        print(f"  of the watched ones, imported: {', '.join(present) or 'none'}")
        run = results[name][-1]
        if "top_files" in run:
            print(f"  traced at idle: {run['traced_bytes'] / 2**20:.1f} MiB; largest files:")
            for size, count, filename in run["top_files"]:
                print(f"  {size / 2**20:8.2f} MiB {count:>8} blocks  {filename}")
            print("  largest tracebacks:")
            for size, count, frames in run["top_tracebacks"]:
                print(f"  {size / 2**20:8.2f} MiB {count:>8} blocks  {' <- '.join(reversed(frames[-4:]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
