"""Installing the peers (apt, npm, go) into ~/.cache/pixelmill/bench, and building pixelmill."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

from common import CACHE, HERE, REPO, TARGET, Ctx, log, run_cmd

IMGPROXY_MODULE = "github.com/imgproxy/imgproxy/v4@v4.0.12"
NODE_DIR = CACHE / "node"
GOBIN = CACHE / "go" / "bin"
ALL_TOOLS_BUT_PIXELMILL = "sharp,pillow,libvips,thumbor,ipx,imgproxy"


def dpkg_installed(pkg: str) -> bool:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def install_apt(ctx: Ctx, pkgs: list[str]) -> None:
    missing = [p for p in pkgs if not dpkg_installed(p)]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    t = time.monotonic()
    log(f"apt-get install {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run_cmd(sudo + ["apt-get", "update", "-qq"], timeout=600, env=env)
    run_cmd(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            timeout=1200, env=env)
    ctx.record({"kind": "install", "what": "apt " + " ".join(missing),
                "seconds": round(time.monotonic() - t, 1)})


def node_problem() -> str | None:
    """Why sharp 0.35 cannot run here (it needs Node >= 20.9), or None."""
    if not shutil.which("node") or not shutil.which("npm"):
        return "no `node`/`npm` on PATH (sharp 0.35 needs Node >= 20.9; Debian 12's nodejs is 18)"
    out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout
    major, minor = (int(x) for x in out.strip().lstrip("v").split(".")[:2])
    if (major, minor) < (20, 9):
        return f"node {out.strip()} is too old: sharp 0.35 needs Node >= 20.9"
    return None


def install_node(ctx: Ctx) -> None:
    problem = node_problem()
    if problem:
        for t in ("sharp", "ipx"):
            if t in ctx.tools:
                ctx.skip(t, "install", problem)
                ctx.tools.discard(t)
        return
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    want = (HERE / "package.json").read_text()
    have = (NODE_DIR / "package.json").read_text() if (NODE_DIR / "package.json").exists() else ""
    if want == have and (NODE_DIR / "node_modules" / "sharp").exists() \
            and (NODE_DIR / "node_modules" / "ipx").exists():
        return
    (NODE_DIR / "package.json").write_text(want)
    t = time.monotonic()
    log(f"npm install sharp, ipx into {NODE_DIR}")
    run_cmd(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
            timeout=900)
    ctx.record({"kind": "install", "what": "npm sharp ipx", "seconds": round(time.monotonic() - t, 1)})


def install_imgproxy(ctx: Ctx) -> None:
    if (GOBIN / "imgproxy").exists():
        return
    if not shutil.which("go"):
        ctx.skip("imgproxy", "install", "no `go` on PATH (imgproxy v4 is built with go install)")
        return
    GOBIN.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    log(f"go install {IMGPROXY_MODULE} (several minutes on 2 cores)")
    env = dict(os.environ, CGO_ENABLED="1", GOBIN=str(GOBIN))
    r = subprocess.run(["go", "install", IMGPROXY_MODULE], env=env, capture_output=True, text=True,
                       timeout=2400)
    if r.returncode != 0:
        err = (r.stderr or r.stdout).strip()
        # Registry URLs stay out of the report (it is committed); the status line says enough.
        err = re.sub(r"https?://\S+", "<module proxy URL>", err[-600:])
        ctx.skip("imgproxy", "install", f"`go install {IMGPROXY_MODULE}` failed: {err}")
        return
    ctx.record({"kind": "install", "what": "go install imgproxy",
                "seconds": round(time.monotonic() - t, 1)})


def build_pixelmill(ctx: Ctx, phases: set[str]) -> None:
    """cargo build --release of what the selected phases need; exits with a clear message if the
    pixelmill-bench package is missing."""
    builds = []
    if phases & {"engine", "quality", "install"} and "PIXELMILL_BENCH_ENGINE_BIN" not in os.environ:
        builds.append((["cargo", "build", "--release", "-p", "pixelmill-bench"], "pixelmill-bench"))
    if phases & {"service", "install"} and "PIXELMILL_BENCH_SERVER_BIN" not in os.environ:
        builds.append((["cargo", "build", "--release", "--bin", "pixelmill"], "pixelmill"))
    if builds:
        # nasm gives libjpeg-turbo its SIMD kernels; without it pixelmill's JPEG is measured slow.
        subprocess.run([str(REPO / "scripts" / "build-deps")], check=False, timeout=600)
    for cmd, name in builds:
        log(" ".join(cmd))
        t = time.monotonic()
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3600)
        if r.returncode != 0 or not (TARGET / "release" / name).exists():
            tail = "\n".join(r.stderr.strip().splitlines()[-15:])
            sys.exit(f"\nbench: `{' '.join(cmd)}` failed, so target/release/{name} is missing.\n"
                     f"{tail}\n\nTo benchmark the peers alone, leave pixelmill out, e.g. "
                     f"`bench/run --tools {ALL_TOOLS_BUT_PIXELMILL}`.")
        ctx.record({"kind": "install", "what": " ".join(cmd), "seconds": round(time.monotonic() - t, 1)})
