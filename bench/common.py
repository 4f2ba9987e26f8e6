"""Shared bits of the bench harness: paths, the run context and its result log."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
CACHE = Path(os.environ.get("PIXELMILL_BENCH_CACHE", Path.home() / ".cache" / "pixelmill" / "bench"))


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_cmd(cmd: list[str], timeout: int, **kw) -> subprocess.CompletedProcess:
    """Run a command, bounded in time; raise with its output if it fails."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` exited {r.returncode}:\n{(r.stderr or r.stdout)[-2000:]}")
    return r


def cpu_idle_percent(seconds: float = 2.0) -> float:
    """Share of all CPUs' time that was idle over `seconds` (from /proc/stat)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)
    i0, t0 = snap()
    time.sleep(seconds)
    i1, t1 = snap()
    return 100.0 * (i1 - i0) / max(1, t1 - t0)


@dataclass
class Ctx:
    """One harness run: which tools, how long, and where results go."""
    tools: set[str]
    quick: bool
    results: Path
    workdir: Path
    wait_idle: float = 0.0
    records: list[dict] = field(default_factory=list)
    skips: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.results.parent.mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)

    def record(self, rec: dict) -> None:
        self.records.append(rec)
        with open(self.results, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def skip(self, tool: str, what: str, reason: str) -> None:
        rec = {"kind": "skip", "tool": tool, "what": what, "reason": reason}
        self.skips.append(rec)
        self.record(rec)
        log(f"SKIP {tool} {what}: {reason}")

    def note_cpu(self, phase: str) -> None:
        """Record how idle the CPU is before a phase; with wait_idle, first wait (bounded) for it
        to be at least 90% idle."""
        end = time.monotonic() + self.wait_idle
        idle = cpu_idle_percent()
        last = 0.0
        while idle < 90 and time.monotonic() < end:
            if time.monotonic() - last >= 30:
                log(f"waiting up to {end - time.monotonic():.0f}s for an idle CPU before the "
                    f"{phase} phase ({idle:.0f}% idle)")
                last = time.monotonic()
            idle = cpu_idle_percent(3.0)
        self.record({"kind": "cpu", "phase": phase, "idle_percent_before": round(idle, 1)})
        if idle < 90:
            log(f"warning: CPU only {idle:.0f}% idle before the {phase} phase; figures will be noisy")
