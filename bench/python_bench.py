"""Python vs C++ per checkpoint, on the same private durable PostgreSQL, in one run.

Three figures, each printed beside its C++ baseline (bench/python_bench_cpp.cc,
the same phases through the same engine entry point, Execution::OpenFromProcess):

  cached   one cached checkpoint (a resumed run returning a recorded output);
           target: <= 20 us above C++
  live     one live checkpoint write (trivial body; marker + durable completion);
           target: <= 1.2x C++; also its CPU time (the calling thread's), which
           the waits of a loaded machine do not blur
  resume   what a user pays to resume a 40-checkpoint run at checkpoint 39:
           open (connect + Begin) + 39 cached + 1 live

Nothing is asserted: the figures are printed, the exit code only says whether
the run worked. Sides alternate by round (C++ first in odd rounds, Python first
in even ones), every phase of both sides in a fresh process of its own, so that
drift in a shared machine's load hits both. Each side's phase reads its run's
identity from FLOWRUN_* exactly as an agent does.

Usage: bench/python_vs_cpp.sh <build dir> [--rounds=4] [--n=300] [--reps=10] [--smoke]
       (or: PYTHONPATH=<build>/python python bench/python_bench.py --build=<build> ...)
Results: docs/benchmarks-runtime.md, "Python vs C++".
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PAYLOAD: dict[str, Any] = {
    "summary": "PostgreSQL commits are durable once the WAL record is flushed; group commit "
               "batches concurrent flushes.",
    "score": 0.87,
    "sources": ["https://www.postgresql.org/docs/current/wal-reliability.html"],
    "tokens": 142,
}


# ------------------------------------------------------------------ the Python worker (one phase, one process)

def worker(mode: str, n: int, arg: bool = False) -> dict[str, Any]:
    """The Python twin of python_bench_cpp: same phases, same output.

    `arg`: the checkpoint takes one str argument, fingerprinted by default (inputs="args").
    """
    import flowrun
    from flowrun import _context, _core

    calls = {"body": 0}

    @flowrun.checkpoint(name="step")
    def step() -> dict:
        calls["body"] += 1
        return PAYLOAD

    @flowrun.checkpoint(name="step")
    def step_arg(topic: str) -> dict:
        calls["body"] += 1
        return PAYLOAD

    if arg:
        step = functools.partial(step_arg, "quantum error correction")  # type: ignore[assignment]

    out: dict[str, Any] = {}
    t_open = time.perf_counter()
    ex, code = _core.Execution.open_from_process()
    out["open_us"] = (time.perf_counter() - t_open) * 1e6
    if ex is None:
        raise SystemExit(f"python_bench: the execution did not open (exit code {code})")
    _context.activate(_context.Runtime(ex))
    if mode in ("live", "cached", "setup"):
        samples, cpu = [], []
        for _ in range(n):
            before = calls["body"]
            c0 = time.thread_time()
            t0 = time.perf_counter()
            v = step()
            samples.append((time.perf_counter() - t0) * 1e6)
            cpu.append((time.thread_time() - c0) * 1e6)
            if len(v) != len(PAYLOAD):
                raise SystemExit("python_bench: wrong output")
            if (calls["body"] != before) != (mode != "cached"):
                raise SystemExit(f"python_bench: {mode}: a checkpoint was {'live' if mode == 'cached' else 'cached'}")
        out["samples_us"] = samples
        out["cpu_us"] = cpu
    else:  # resume: from before the open to the end of the first live checkpoint
        t1 = time.perf_counter()
        for _ in range(n):
            step()
        out["cached_us"] = (time.perf_counter() - t1) * 1e6
        if calls["body"]:
            raise SystemExit("python_bench: resume: a cached checkpoint ran its body")
        t2 = time.perf_counter()
        step()
        out["live_us"] = (time.perf_counter() - t2) * 1e6
        if calls["body"] != 1:
            raise SystemExit("python_bench: resume: the last checkpoint was not live")
        out["samples_us"] = [(time.perf_counter() - t_open) * 1e6]
    return out  # not finished: like a process killed here; the next attempt fences it


# ------------------------------------------------------------------ the driver

def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    k = min(max(math.ceil(q * len(s)), 1), len(s))
    return s[k - 1]


class Bench:
    def __init__(self, build: Path, server: Any, db: str, python: str) -> None:
        self.build = build
        self.server = server
        self.url = server.url(db)
        self.python = python
        self.cpp = build / "bench" / "python_bench_cpp"
        self.tmp = tempfile.mkdtemp(prefix="flowrun-pybench-")
        self.log = open(f"{self.tmp}/agents.log", "w")

    def phase(self, side: str, uid: str, attempt: int, mode: str, n: int, arg: bool = False) -> dict[str, Any]:
        from support.postgres import clean_env

        env = clean_env()
        env.update({
            "PYTHONPATH": os.pathsep.join([str(self.build / "python"), str(REPO / "sdk" / "python" / "tests")]),
            "FLOWRUN_RUN_UID": uid, "FLOWRUN_RUN_NAME": uid, "FLOWRUN_RUN_NAMESPACE": "bench",
            "FLOWRUN_FLOW": "python_bench", "FLOWRUN_ATTEMPT": str(attempt), "FLOWRUN_PARAMETERS": "{}",
            "FLOWRUN_DATABASE_URL": self.url,
            "FLOWRUN_TERMINATION_MESSAGE_PATH": f"{self.tmp}/termination-{uid}-{attempt}",
            "FLOWRUN_BENCH_PAYLOAD": json.dumps(PAYLOAD),  # the C++ side's output: the same JSON
        })
        argv = ([str(self.cpp), mode, str(n)] if side == "cpp" else
                [self.python, __file__, "--worker", mode, str(n)]) + (["arg"] if arg else [])
        r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        if r.returncode != 0:
            raise SystemExit(f"python_bench: {side} {mode} failed (exit {r.returncode}); log {self.log.name}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def round(self, side: str, tag: str, n: int, reps: int, warmup: int) -> dict[str, list[float]]:
        res: dict[str, list[float]] = {"live": [], "live_cpu": [], "cached": [], "cached_arg": [], "resume": [],
                                       "resume_open": [], "resume_cached": [], "resume_live": []}
        uid = f"{side}-{tag}-lc"
        live = self.phase(side, uid, 1, "live", warmup + n)
        res["live"] = live["samples_us"][warmup:]
        res["live_cpu"] = live["cpu_us"][warmup:]
        cached = self.phase(side, uid, 2, "cached", warmup + n)
        res["cached"] = cached["samples_us"][warmup:]
        self.phase(side, f"{uid}-arg", 1, "setup", warmup + n, arg=True)
        res["cached_arg"] = self.phase(side, f"{uid}-arg", 2, "cached", warmup + n, arg=True)["samples_us"][warmup:]
        for rep in range(reps):
            ruid = f"{side}-{tag}-r{rep}"
            self.phase(side, ruid, 1, "setup", 39)
            r = self.phase(side, ruid, 2, "resume", 39)
            res["resume"].append(r["samples_us"][0])
            res["resume_open"].append(r["open_us"])
            res["resume_cached"].append(r["cached_us"])
            res["resume_live"].append(r["live_us"])
        return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", type=Path, default=REPO / "build")
    ap.add_argument("--rounds", type=int, default=4, help="alternated rounds (C++ first, then Python first, ...)")
    ap.add_argument("--n", type=int, default=300, help="live and cached samples per side per round")
    ap.add_argument("--reps", type=int, default=10, help="resumes per side per round")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs and prints")
    ap.add_argument("--worker", nargs="+", metavar="MODE N [arg]", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker[0], int(a.worker[1]), a.worker[2:] == ["arg"])), flush=True)
        return 0
    if a.smoke:
        a.rounds, a.n, a.reps = 2, 5, 1
    if min(a.rounds, a.n, a.reps) < 1:
        ap.error("--rounds, --n and --reps must be positive")
    warmup = 2 if a.smoke else 30
    sys.path.insert(0, str(REPO / "sdk" / "python" / "tests"))
    from support.postgres import PostgresServer, clean_env

    load_start = Path("/proc/loadavg").read_text().split()[:3]
    server = PostgresServer()
    server.start()
    try:
        # The SDK test server runs with fsync off; a benchmark of durable writes needs PostgreSQL's
        # durable defaults (as runtime_bench: fsync, synchronous_commit, full_page_writes on).
        server.psql("postgres", "ALTER SYSTEM SET fsync = on; ALTER SYSTEM SET synchronous_commit = on;"
                                " ALTER SYSTEM SET full_page_writes = on")
        server.psql("postgres", "SELECT pg_reload_conf()")
        db = server.create_database()
        subprocess.run([str(a.build / "runtime-lib" / "flowrunctl"), "--db", server.url(db), "migrate"],
                       check=True, capture_output=True, env=clean_env())
        settings = ""
        for _ in range(100):  # the reload is asynchronous: wait until the server reports the settings
            settings = server.psql(db, "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings"
                                       " WHERE name IN ('fsync','synchronous_commit','full_page_writes',"
                                       "'wal_sync_method','commit_delay')")
            if "fsync=on" in settings and "synchronous_commit=on" in settings and "full_page_writes=on" in settings:
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"python_bench: the durable settings did not apply: {settings}")
        version = server.psql(db, "SHOW server_version")
        bench = Bench(a.build, server, db, sys.executable)
        totals: dict[str, dict[str, list[float]]] = {"cpp": {}, "py": {}}
        per_round: list[dict[str, Any]] = []
        for rnd in range(a.rounds):
            order = ("cpp", "py") if rnd % 2 == 0 else ("py", "cpp")
            load = Path("/proc/loadavg").read_text().split()[0]
            got = {side: bench.round(side, f"{rnd}", a.n, a.reps, warmup) for side in order}
            per_round.append({"round": rnd + 1, "order": "→".join(order), "load": load, **got})
            for side in ("cpp", "py"):
                for k, v in got[side].items():
                    totals[side].setdefault(k, []).extend(v)
            print(f"python_bench: round {rnd + 1}/{a.rounds} done ({'→'.join(order)}, load {load})",
                  file=sys.stderr, flush=True)
        report(a, version, settings, load_start, totals, per_round)
        bench.log.close()
        shutil.rmtree(bench.tmp, ignore_errors=True)  # kept when a phase failed: its log is named then
    finally:
        server.stop()
    return 0


def report(a: Any, version: str, settings: str, load_start: list[str], totals: Any, per_round: list[Any]) -> None:
    load_end = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\nflowrun python_bench{' (--smoke)' if a.smoke else ''}: Python SDK vs C++ Flow, per checkpoint")
    print(f"machine: {os.cpu_count()} CPUs; load average at start {' '.join(load_start)}, at end {' '.join(load_end)}")
    print(f"PostgreSQL {version} (private server on 127.0.0.1, TCP), same server and database for both: {settings}")
    print(f"rounds={a.rounds} (alternating which side goes first), per side per round: n={a.n} live and cached "
          f"samples, reps={a.reps} resumes; Python {sys.version.split()[0]}\n")

    def ms(us: float) -> str:
        return f"{us / 1000:.3f} ms" if us >= 1000 else f"{us:.1f} µs"

    rows = [("metric", "python", "c++", "python − c++", "python / c++", "target")]
    figures = [("cached checkpoint, no argument", "cached", "≤ 20 µs above C++ (p50)"),
               ("cached checkpoint, one str argument (fingerprinted)", "cached_arg", "≤ 20 µs above C++ (p50)"),
               ("live checkpoint write", "live", "≤ 1.2× C++ (p50)"),
               ("  its CPU time (the calling thread's)", "live_cpu", ""),
               ("resume at 39 of 40: open + 39 cached + 1 live", "resume", ""),
               ("  of which open (connect + Begin)", "resume_open", ""),
               ("  of which 39 cached", "resume_cached", ""),
               ("  of which 1 live", "resume_live", "")]
    for title, key, target in figures:
        for q, qn in ((0.5, "p50"), (0.99, "p99")):
            p, c = pct(totals["py"][key], q), pct(totals["cpp"][key], q)
            rows.append((f"{title}, {qn}", ms(p), ms(c), ("+" if p >= c else "−") + ms(abs(p - c)),
                         f"{p / c:.2f}×" if c > 0 else "—", target if qn == "p50" else ""))
    width = [max(len(r[i]) for r in rows) for i in range(6)]
    for i, r in enumerate(rows):
        print("| " + " | ".join(cell.ljust(width[j]) for j, cell in enumerate(r)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in width) + "|")
    print("\nper round, p50 (python / c++), to show the noise:")
    for r in per_round:
        parts = []
        for key, label in (("cached", "cached"), ("cached_arg", "cached 1 arg"), ("live", "live"),
                           ("live_cpu", "live CPU"), ("resume", "resume")):
            parts.append(f"{label} {ms(pct(r['py'][key], 0.5))} / {ms(pct(r['cpp'][key], 0.5))}")
        print(f"  round {r['round']} ({r['order']}, load {r['load']}): " + "; ".join(parts))
    print("\nsamples: live and cached per checkpoint call (the decorated function / Flow::checkpoint), each side "
          "in its own process through Execution::OpenFromProcess; resume from before the open to the end of the "
          "live checkpoint, a fresh run of 39 completed checkpoints each time; a live write's CPU time is the "
          "calling thread's (CLOCK_THREAD_CPUTIME_ID / time.thread_time): the work each side does per write, "
          "which a loaded machine's waits for the disk and the scheduler do not blur")
    print("machine-readable: " + json.dumps({side: {k: {"p50_us": pct(v, 0.5), "p99_us": pct(v, 0.99), "n": len(v)}
                                                     for k, v in totals[side].items()} for side in totals}))


if __name__ == "__main__":
    sys.exit(main())
