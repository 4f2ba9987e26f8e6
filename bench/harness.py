#!/usr/bin/env python3
"""pixelmill benchmark harness: engine, service and quality benchmarks against peers.

Run through `bench/run` (which makes the venv). Installs peers into ~/.cache/pixelmill/bench,
generates its images there, writes raw results to ~/.cache/pixelmill/bench/results/<ts>.jsonl and
renders docs/BENCHMARKS.md between `<!-- bench:begin -->` and `<!-- bench:end -->`.
See bench/README.md for what is measured and how.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import images  # noqa: E402
import report  # noqa: E402
import service  # noqa: E402
from common import CACHE, HERE, REPO, TARGET, Ctx, log, run_cmd  # noqa: E402
from install import (GOBIN, NODE_DIR, build_pixelmill, install_apt, install_imgproxy,  # noqa: E402
                     install_node)

ENGINE_TOOLS = ["pixelmill", "sharp", "pillow"]
SERVICE_TOOLS = ["pixelmill", "imgproxy", "thumbor", "ipx"]
QUALITY_TOOLS = ["pixelmill", "sharp", "pillow", "libvips"]
ALL_TOOLS = sorted(set(ENGINE_TOOLS + SERVICE_TOOLS + QUALITY_TOOLS))

# The task names are pixelmill-bench's (`--task`); the peer scripts use the same names.
# task -> (input image key, iterations, quick iterations, warm-up, quick warm-up, tools)
ENGINE_TASKS = {
    "thumbnail": ("photo12mp", 30, 3, 3, 1, ("pixelmill", "sharp", "pillow")),
    "webp800": ("photo1080", 40, 3, 3, 1, ("pixelmill", "sharp", "pillow")),
    "blur5": ("photo1080", 30, 3, 3, 1, ("pixelmill", "sharp", "pillow")),
    "gif240": ("anim_gif", 5, 1, 1, 0, ("pixelmill", "sharp", "pillow")),
    "invert": ("photo1080", 30, 3, 3, 1, ("pixelmill", "sharp", "pillow")),
    "expr-invert": ("photo1080", 30, 3, 3, 1, ("pixelmill",)),
    "jpeg-decode-floor": ("photo12mp", 50, 5, 3, 1, ("pixelmill", "pillow")),
    "jpeg-decode-reduced": ("photo12mp", 50, 5, 3, 1, ("pixelmill",)),
}
# What each task's output must be: (width, height, frames) of the encoded image, or for the raw
# decodes the byte count at 1/8 scale (RGB from both decoders).
# Checked on every engine run.
EXPECTED = {"thumbnail": (400, 300, 1), "webp800": (800, 450, 1), "blur5": (1920, 1080, 1),
            "gif240": (240, 135, 40), "invert": (1920, 1080, 1), "expr-invert": (1920, 1080, 1),
            "jpeg-decode-floor": 500 * 375 * 3, "jpeg-decode-reduced": 500 * 375 * 3}
QUALITY_TASKS = {"thumbnail": "photo12mp", "webp800": "photo1080"}

# Override for testing the harness or timing another build (no cargo build then); the server's
# is PIXELMILL_BENCH_SERVER_BIN, read in service.py.
ENGINE_BIN = Path(os.environ.get("PIXELMILL_BENCH_ENGINE_BIN",
                                  TARGET / "release" / "pixelmill-bench")).resolve()
# One core for the engine under test; these keep every library's own threads at one.
ONE_CORE_ENV = {"VIPS_CONCURRENCY": "1", "UV_THREADPOOL_SIZE": "1", "OMP_NUM_THREADS": "1",
                "RAYON_NUM_THREADS": "1", "GOMAXPROCS": "1", "TOKIO_WORKER_THREADS": "1"}


# ---------------------------------------------------------------- engine benchmarks

def engine_cmd(tool: str, task: str, inp: Path, iters: int, warmup: int,
               write_output: Path | None = None, kernel: str | None = None) -> list[str]:
    if tool == "pixelmill":
        cmd = [str(ENGINE_BIN), "engine", "--task", task,
               "--input", str(inp), "--iterations", str(iters), "--warmup", str(warmup)]
    elif tool == "sharp":
        cmd = ["node", str(HERE / "engine_sharp.cjs"), "--task", task, "--input", str(inp),
               "--iterations", str(iters), "--warmup", str(warmup)]
    elif tool == "pillow":
        cmd = [sys.executable, str(HERE / "engine_pillow.py"), "--task", task, "--input", str(inp),
               "--iterations", str(iters), "--warmup", str(warmup)]
    else:
        raise ValueError(tool)
    if write_output:
        cmd += ["--write-output", str(write_output)]
    if kernel:
        cmd += ["--kernel", kernel]
    return ["taskset", "-c", "0", *cmd]


def run_engine_once(ctx: Ctx, tool: str, task: str, inp: Path, iters: int, warmup: int,
                    write_output: Path | None = None, timeout: int = 900,
                    phase: str = "engine", kernel: str | None = None) -> dict | None:
    """Run one tool on one task in its own process; the parsed JSON line, or None (skip recorded)."""
    cmd = engine_cmd(tool, task, inp, iters, warmup, write_output, kernel)
    what = f"{phase}/{task}"
    env = dict(os.environ, **ONE_CORE_ENV, PIXELMILL_BENCH_NODE_DIR=str(NODE_DIR))
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        ctx.skip(tool, what, f"timed out after {timeout}s: {shlex.join(cmd)}")
        return None
    lines = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("{")]
    if r.returncode != 0 or not lines:
        ctx.skip(tool, what, f"exit {r.returncode}: {(r.stderr or r.stdout).strip()[-500:]}")
        return None
    try:
        res = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        ctx.skip(tool, what, f"bad JSON line {lines[-1]!r}: {e}")
        return None
    missing = {"ms_per_op", "ops_per_s", "peak_rss_kb", "output_bytes"} - res.keys()
    if missing:
        ctx.skip(tool, what, f"JSON line lacks {sorted(missing)}: {lines[-1]}")
        return None
    res["tool"] = tool
    res["task"] = task
    res.setdefault("iterations", iters)
    return res


def check_output(task: str, path: Path) -> str:
    """'ok', or what is wrong with a task's output (size, frame count)."""
    want = EXPECTED[task]
    if not path.exists():
        return "no output written (--write-output)"
    if isinstance(want, int):
        n = path.stat().st_size
        return "ok" if n == want else f"{n} bytes of raw RGB, wanted {want}"
    from PIL import Image
    try:
        im = Image.open(path)
        got = (im.width, im.height, getattr(im, "n_frames", 1))
    except Exception as e:  # an undecodable output is a finding
        return f"cannot decode: {type(e).__name__}: {e}"
    if got != want:
        return f"{got[0]}x{got[1]}, {got[2]} frame(s); wanted {want[0]}x{want[1]}, {want[2]} frame(s)"
    return "ok"


def phase_engine(ctx: Ctx, imgs: dict[str, Path]) -> None:
    if not ctx.tools & set(ENGINE_TOOLS):
        return
    ctx.note_cpu("engine")
    out_dir = ctx.workdir / "engine"
    out_dir.mkdir(parents=True, exist_ok=True)
    for task, (key, n, nq, w, wq, task_tools) in ENGINE_TASKS.items():
        iters, warm = (nq, wq) if ctx.quick else (n, w)
        for tool in [t for t in ENGINE_TOOLS if t in ctx.tools and t in task_tools]:
            log(f"engine {task:17s} {tool:10s} ({iters} iterations)")
            dest = out_dir / f"{tool}_{task}.out"
            res = run_engine_once(ctx, tool, task, imgs[key], iters, warm, write_output=dest,
                                  timeout=300 if ctx.quick else 900)
            if res:
                res.update(kind="engine", input=imgs[key].name, output_check=check_output(task, dest))
                ctx.record(res)
                log(f"  {res['ms_per_op']:.1f} ms/op, {res['ops_per_s']:.2f} ops/s, "
                    f"peak RSS {res['peak_rss_kb'] / 1024:.0f} MiB, output {res['output_check']}")


# ---------------------------------------------------------------- quality

def psnr(a_path: Path, b_path: Path) -> tuple[float | None, str]:
    import numpy as np
    from PIL import Image
    a = Image.open(a_path).convert("RGB")
    b = Image.open(b_path).convert("RGB")
    if a.size != b.size:
        return None, f"size {a.size[0]}x{a.size[1]} vs reference {b.size[0]}x{b.size[1]}"
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return (float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)), f"{a.size[0]}x{a.size[1]}"


def phase_quality(ctx: Ctx, imgs: dict[str, Path]) -> None:
    tools = [t for t in QUALITY_TOOLS if t in ctx.tools]
    if not tools:
        return
    if not shutil.which("vips"):
        ctx.skip("libvips", "quality", "no `vips` on PATH (apt-get install libvips-tools)")
        return
    from PIL import Image
    out = ctx.workdir / "quality"
    out.mkdir(parents=True, exist_ok=True)
    for task, key in QUALITY_TASKS.items():
        src = imgs[key]
        w, h = Image.open(src).size
        if task == "thumbnail":
            scale = min(400 / w, 400 / h)
            vips_out, vips_args = out / "libvips_thumbnail.jpg", ["400", "--height", "400"]
            vips_out_spec = f"{vips_out}[Q=80]"
        else:
            scale = 800 / w
            vips_out, vips_args = out / "libvips_webp800.webp", ["800"]
            vips_out_spec = f"{vips_out}[Q=80]"
        # Reference: full decode, libvips lanczos3 to the same size, lossless PNG.
        ref = out / f"reference_{task}.png"
        # --gap 0: no box pre-shrink, lanczos3 over the whole reduction.
        run_cmd(["vips", "resize", str(src), str(ref), repr(scale), "--kernel", "lanczos3",
                 "--gap", "0"], timeout=300)
        for tool in tools:
            dest = out / f"{tool}_{task}.out"
            if tool == "libvips":
                run_cmd(["vips", "thumbnail", str(src), vips_out_spec, *vips_args], timeout=300)
                dest = vips_out
            else:
                res = run_engine_once(ctx, tool, task, src, 1, 0, write_output=dest, timeout=300,
                                      phase="quality")
                if not res:
                    continue
                if not dest.exists():
                    ctx.skip(tool, f"quality/{task}", f"--write-output {dest} wrote nothing")
                    continue
            try:
                value, note = psnr(dest, ref)
            except Exception as e:  # an undecodable output is a finding, not a harness crash
                ctx.skip(tool, f"quality/{task}", f"cannot compare {dest}: {type(e).__name__}: {e}")
                continue
            rec = {"kind": "quality", "tool": tool, "task": task, "psnr_db": value, "size": note,
                   "output_bytes": dest.stat().st_size, "reference": "vips resize --kernel lanczos3 --gap 0"}
            ctx.record(rec)
            log(f"quality {task:12s} {tool:10s} PSNR {value if value is None else round(value, 2)} dB ({note})")
    kernel_quality(ctx, imgs["photo12mp"], out)


# libvips's kernel names, which pixelmill's resize and sharp take too.
KERNELS = ("nearest", "linear", "cubic", "mitchell", "lanczos2", "lanczos3")


def kernel_quality(ctx: Ctx, src: Path, out: Path) -> None:
    """Each resize kernel, 12 MP JPEG -> 400 wide, lossless: PSNR of pixelmill, sharp (libvips
    with shrink-on-load) and `vips resize` (libvips's own default, a box pre-shrink then the
    kernel) against `vips resize --gap 0`, the pure kernel over the full decode."""
    from PIL import Image
    scale = 400 / Image.open(src).size[0]
    for kernel in KERNELS:
        ref = out / f"reference_kernel400_{kernel}.png"
        run_cmd(["vips", "resize", str(src), str(ref), repr(scale), "--kernel", kernel,
                 "--gap", "0"], timeout=300)
        for tool in [t for t in ("pixelmill", "sharp", "libvips") if t in ctx.tools]:
            dest = out / f"{tool}_kernel400_{kernel}.png"
            if tool == "libvips":
                run_cmd(["vips", "resize", str(src), str(dest), repr(scale), "--kernel", kernel],
                        timeout=300)
            elif not run_engine_once(ctx, tool, "kernel400", src, 1, 0, write_output=dest,
                                     timeout=300, phase=f"quality/{kernel}", kernel=kernel):
                continue
            value, note = psnr(dest, ref)
            ctx.record({"kind": "kernel_quality", "tool": tool, "kernel": kernel, "psnr_db": value,
                        "size": note})
            log(f"quality kernel400 {kernel:9s} {tool:10s} PSNR "
                f"{value if value is None else round(value, 2)} dB ({note})")


# ---------------------------------------------------------------- main

def versions(ctx: Ctx) -> dict[str, str]:
    v: dict[str, str] = {}

    def cap(cmd, **kw) -> str:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)
            return (r.stdout or r.stderr).strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    try:
        import PIL
        v["Pillow"] = PIL.__version__
    except ImportError:
        pass
    try:
        import thumbor
        v["thumbor"] = thumbor.__version__
    except ImportError:
        pass
    if shutil.which("vips"):
        v["libvips (Debian, vips CLI and imgproxy)"] = cap(["vips", "--version"]).replace("vips-", "")
    if (NODE_DIR / "node_modules" / "sharp").exists():
        out = cap(["node", "-e", "const r=require('module').createRequire(process.argv[1]);"
                   "const s=r('sharp');console.log(s.versions.sharp+' '+s.versions.vips)",
                   str(NODE_DIR / "package.json")])
        if out:
            sv, lv = out.split()[:2]
            v["sharp"], v["libvips (bundled with sharp)"] = sv, lv
        for name in ("ipx", "ipx/node_modules/sharp"):
            pj = NODE_DIR / "node_modules" / name / "package.json"
            if pj.exists():
                v[name.replace("/node_modules/", "'s ")] = json.loads(pj.read_text())["version"]
    if (GOBIN / "imgproxy").exists():
        out = cap(["go", "version", "-m", str(GOBIN / "imgproxy")])
        for ln in out.splitlines():
            if ln.strip().startswith("mod"):
                v["imgproxy"] = ln.split()[2]
    v["node"] = cap(["node", "--version"])
    v["python"] = sys.version.split()[0]
    v["wrk"] = (cap(["wrk", "--version"]).split() + ["", ""])[1] if shutil.which("wrk") else ""
    return {k: s for k, s in v.items() if s}


def machine() -> dict:
    def cap(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=REPO).stdout.strip()
        except OSError:
            return ""
    model = next((ln.split(":", 1)[1].strip() for ln in cap(["lscpu"]).splitlines()
                  if ln.startswith("Model name")), "?")
    dirty = cap(["git", "status", "--porcelain", "--untracked-files=no"])
    return {"cpu_model": model, "nproc": os.cpu_count(), "kernel": os.uname().release,
            "git_commit": cap(["git", "rev-parse", "--short", "HEAD"]) + (" (+ uncommitted changes)" if dirty else ""),
            "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="short runs for a smoke test (few iterations, 3 s load); does not touch "
                        "docs/BENCHMARKS.md unless --docs is given")
    p.add_argument("--only", action="append", metavar="PHASE",
                   help="run only these phases: engine, service, quality (comma-separated or "
                        "repeated); `install` only installs, builds and generates the images")
    p.add_argument("--tools", help=f"comma-separated subset of {','.join(ALL_TOOLS)}")
    p.add_argument("--skip-install", action="store_true",
                   help="install nothing (apt, npm, go, pip); still builds pixelmill with cargo")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before each phase wait up to SECONDS for the CPU to be >=90%% idle")
    p.add_argument("--docs", action="store_true", help="update docs/BENCHMARKS.md even with --quick")
    p.add_argument("--no-docs", action="store_true", help="never touch docs/BENCHMARKS.md")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    phases = {x.strip() for o in (a.only or ["engine,service,quality"]) for x in o.split(",") if x.strip()}
    if phases - {"engine", "service", "quality", "install"}:
        sys.exit(f"bench: unknown phase(s) {sorted(phases - {'engine', 'service', 'quality', 'install'})}")
    tools = set(ALL_TOOLS)
    if a.tools:
        tools = {t.strip() for t in a.tools.split(",") if t.strip()}
        unknown = tools - set(ALL_TOOLS)
        if unknown:
            sys.exit(f"bench: unknown tool(s) {sorted(unknown)}; known: {','.join(ALL_TOOLS)}")
    ts = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    ctx = Ctx(tools=tools, quick=a.quick, results=CACHE / "results" / f"{ts}.jsonl",
              workdir=CACHE / "work" / ts, wait_idle=a.wait_idle)
    overrides = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in
                         ("PIXELMILL_BENCH_ENGINE_BIN", "PIXELMILL_BENCH_SERVER_BIN") if k in os.environ)
    command = " ".join(x for x in (overrides, "bench/run", shlex.join(argv)) if x)
    ctx.record({"kind": "meta", "command": command, "phases": sorted(phases),
                "tools": sorted(tools), "quick": a.quick, **machine()})
    try:
        if os.environ.get("PIXELMILL_BENCH_PIP_SECONDS"):
            ctx.record({"kind": "install", "what": "pip install -r bench/requirements.txt",
                        "seconds": float(os.environ["PIXELMILL_BENCH_PIP_SECONDS"])})
        if not a.skip_install:
            t0 = time.monotonic()
            apt = []
            if phases & {"quality", "install"} or "imgproxy" in tools:
                apt.append("libvips-tools")
            if phases & {"service", "install"}:
                apt.append("wrk")
            if "imgproxy" in tools and phases & {"service", "install"}:
                apt.append("libvips-dev")
            install_apt(ctx, apt)
            if tools & {"sharp", "ipx"}:
                install_node(ctx)
            if "imgproxy" in tools and phases & {"service", "install"}:
                install_imgproxy(ctx)
            if any(r["kind"] == "install" for r in ctx.records):
                ctx.record({"kind": "install", "what": "total (this run)",
                            "seconds": round(time.monotonic() - t0, 1)})
        if "pixelmill" in tools:
            build_pixelmill(ctx, phases)
        imgs = images.ensure_images(CACHE / "images", log=log)
        ctx.record({"kind": "images", **{k: {"file": str(p), "bytes": p.stat().st_size}
                                         for k, p in imgs.items()}})
        ctx.record({"kind": "versions", **versions(ctx)})
        for name, fn in (("engine", lambda: phase_engine(ctx, imgs)),
                         ("quality", lambda: phase_quality(ctx, imgs)),
                         ("service", lambda: service.phase_service(ctx, imgs, SERVICE_TOOLS,
                                                                   NODE_DIR, GOBIN))):
            if name not in phases:
                continue
            try:
                fn()
            except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
                ctx.skip("all", name, f"phase stopped: {type(e).__name__}: {e}")
    finally:
        service.stop_all()
        # Outputs and served copies are only needed while measuring (hundreds of MB a run).
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    log(f"raw results: {ctx.results}")
    if not a.no_docs and (not a.quick or a.docs) and phases != {"install"}:
        report.update_docs(ctx.records, REPO / "docs" / "BENCHMARKS.md")
        log("updated docs/BENCHMARKS.md (bench section)")
    for s in ctx.skips:
        log(f"SKIPPED {s['tool']} {s['what']}: {s['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
