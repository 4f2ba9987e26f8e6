"""Service benchmarks: each server on core 0, wrk on core 1, loopback, one uncached transform.

Every server runs in its own process group, is registered in _PROCS and is stopped by stop_all(),
which harness.main() calls in a `finally` (SIGTERM/SIGINT/SIGHUP become SystemExit, so it runs on
those too).
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from common import HERE, TARGET, Ctx, log

_PROCS: list[subprocess.Popen] = []
TARGET_WIDTH = 300
WRK_THREADS, WRK_CONNECTIONS = 1, 8
# wrk cycles through this many byte-distinct copies of the source JPEG (same pixels, a different
# JPEG comment), so no two of the 8 requests in flight ask for the same rendition. Without it a
# server that coalesces identical concurrent requests (pixelmill does) computes one rendition for
# up to 8 answers, and "uncached" would not mean one decode-resize-encode per request.
VARIANTS = 32


def variant_names() -> list[str]:
    return [f"photo-{i:02d}.jpg" for i in range(VARIANTS)]


def write_variants(src: Path, directory: Path) -> None:
    data = src.read_bytes()
    assert data[:2] == b"\xff\xd8", "source is not a JPEG"
    for i, name in enumerate(variant_names()):
        text = f"pixelmill-bench variant {i:02d}".encode()
        com = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text  # COM segment after SOI
        (directory / name).write_bytes(data[:2] + com + data[2:])


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_s, _on_signal)


# ---------------------------------------------------------------- processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict, logfile: Path, cwd: Path | None = None) -> subprocess.Popen:
    """Start a server pinned to core 0 in its own process group."""
    f = open(logfile, "ab")
    p = subprocess.Popen(["taskset", "-c", "0", *cmd], env=env, cwd=cwd, stdout=f,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    f.close()
    _PROCS.append(p)
    return p


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        except ProcessLookupError:
            pass
    if p in _PROCS:
        _PROCS.remove(p)


def stop_all() -> None:
    for p in list(_PROCS):
        try:
            stop(p)
        except Exception as e:  # keep stopping the others
            log(f"could not stop pid {p.pid}: {e}")


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                ppid = int(stat[stat.rindex(")") + 2:].split()[1])
                children.setdefault(ppid, []).append(int(d.name))
            except (OSError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def peak_rss_kb(root: int) -> int:
    """Sum of VmHWM over the server's process tree (an upper bound of the tree's peak)."""
    total = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


# ---------------------------------------------------------------- HTTP

def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 30) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def wait_ready(url: str, p: subprocess.Popen, logfile: Path, timeout: float = 60) -> str | None:
    """Wait until `url` answers at all; return an error string if it never does."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if p.poll() is not None:
            return f"server exited {p.returncode}; log tail:\n{_tail(logfile)}"
        try:
            http("GET", url, timeout=5)
            return None
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
            time.sleep(0.2)
    return f"no answer from {url} within {timeout:.0f}s; log tail:\n{_tail(logfile)}"


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def check_jpeg_width(url: str) -> tuple[str | None, int]:
    """GET url; return (error or None, body size). OK means 200, image/jpeg, JPEG bytes, 300 wide."""
    from PIL import Image
    status, headers, body = http("GET", url)
    ctype = headers.get("content-type", "")
    if status != 200:
        return f"HTTP {status} ({ctype}): {body[:300]!r}", len(body)
    if not ctype.startswith("image/jpeg"):
        return f"content-type {ctype!r}, wanted image/jpeg", len(body)
    if body[:3] != b"\xff\xd8\xff":
        return f"body is not a JPEG (starts {body[:8]!r})", len(body)
    w = Image.open(io.BytesIO(body)).size[0]
    if w != TARGET_WIDTH:
        return f"JPEG is {w} px wide, wanted {TARGET_WIDTH}", len(body)
    return None, len(body)


# ---------------------------------------------------------------- wrk

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_wrk(text: str) -> dict:
    out: dict = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["req_per_s"] = float(m.group(1)) if m else None
    for pct, val, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        out[f"p{pct}_ms"] = round(float(val) * _UNITS[unit], 3)
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if m:
        out["requests"] = int(m.group(1))
        out["duration_s"] = round(float(m.group(2)) * _UNITS[m.group(3)] / 1000, 2)
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non_2xx_3xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return out


def wrk_script(urls: list[str], path: Path) -> Path:
    """A wrk Lua script that sends the URLs' paths in turn (one Lua state with -t1)."""
    paths = [u.split("/", 3)[3] for u in urls]
    quoted = ",\n  ".join(json.dumps("/" + x) for x in paths)  # JSON strings are Lua strings here
    path.write_text(f"local paths = {{\n  {quoted}\n}}\nlocal i = 0\n"
                    "request = function()\n  i = i + 1\n"
                    "  return wrk.format(\"GET\", paths[(i % #paths) + 1])\nend\n")
    return path


def wrk(urls: list[str], script: Path, seconds: int, latency: bool) -> tuple[dict, str]:
    base = "/".join(urls[0].split("/", 3)[:3])
    cmd = ["taskset", "-c", "1", "wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s",
           "--timeout", "10s", "-s", str(script), *(["--latency"] if latency else []), base]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0:
        raise RuntimeError(f"wrk exited {r.returncode}: {r.stderr.strip()[-500:]}")
    return parse_wrk(r.stdout), r.stdout


# ---------------------------------------------------------------- peers

class Skip(Exception):
    pass


def _base_env(**extra: str) -> dict:
    return dict(os.environ, VIPS_CONCURRENCY="1", UV_THREADPOOL_SIZE="1", GOMAXPROCS="1",
                OMP_NUM_THREADS="1", **extra)


def peer_imgproxy(port: int, serve_dir: Path, work: Path, gobin: Path, **_) -> tuple:
    exe = gobin / "imgproxy"
    if not exe.exists():
        raise Skip(f"{exe} is not installed (see the install step's error)")
    env = _base_env(IMGPROXY_BIND=f"127.0.0.1:{port}", IMGPROXY_LOCAL_FILESYSTEM_ROOT=str(serve_dir),
                    IMGPROXY_WORKERS="1", IMGPROXY_QUALITY="80", IMGPROXY_LOG_LEVEL="warn")
    logfile = work / "imgproxy.log"
    p = start([str(exe)], env, logfile)
    base = f"http://127.0.0.1:{port}"
    return (p, logfile, f"{base}/health",
            [f"{base}/insecure/rs:fit:{TARGET_WIDTH}:0/q:80/plain/local:///{n}@jpg"
             for n in variant_names()])


def peer_thumbor(port: int, serve_dir: Path, work: Path, **_) -> tuple:
    exe = Path(sys.executable).parent / "thumbor"
    if not exe.exists():
        raise Skip(f"{exe} is missing (pip install thumbor into the venv)")
    conf = work / "thumbor.conf"
    conf.write_text("\n".join([
        "LOADER = 'thumbor.loaders.file_loader'",
        f"FILE_LOADER_ROOT_PATH = {str(serve_dir)!r}",
        "STORAGE = 'thumbor.storages.no_storage'",  # no source-image cache
        "RESULT_STORAGE = None",  # no result cache
        "ENGINE = 'thumbor.engines.pil'",
        "ALLOW_UNSAFE_URL = True",
        "SECURITY_KEY = 'pixelmill-bench'",
        "QUALITY = 80",
        "AUTO_WEBP = False",
        "",
    ]))
    logfile = work / "thumbor.log"
    p = start([str(exe), "--ip=127.0.0.1", f"--port={port}", f"--conf={conf}", "-l", "warning"],
              _base_env(), logfile)
    base = f"http://127.0.0.1:{port}"
    return (p, logfile, f"{base}/healthcheck",
            [f"{base}/unsafe/{TARGET_WIDTH}x0/{n}" for n in variant_names()])


def peer_ipx(port: int, serve_dir: Path, work: Path, node_dir: Path, **_) -> tuple:
    if not (node_dir / "node_modules" / "ipx").exists():
        raise Skip(f"ipx is not installed in {node_dir}")
    env = _base_env(PIXELMILL_BENCH_NODE_DIR=str(node_dir), IPX_DIR=str(serve_dir), PORT=str(port))
    logfile = work / "ipx.log"
    p = start(["node", str(HERE / "ipx_server.cjs")], env, logfile)
    urls = [f"http://127.0.0.1:{port}/w_{TARGET_WIDTH},f_jpeg,q_80/{n}" for n in variant_names()]
    return p, logfile, urls[0], urls


# The bootstrap admin key of the benchmarked node (the `default` tenant's uploads).
BENCH_KEY = "pixelmill-bench-bootstrap-key-0123456789"


def peer_pixelmill(port: int, serve_dir: Path, work: Path, cached: bool, **_) -> tuple:
    exe = server_bin()
    if not exe.exists():
        raise Skip(f"{exe} is missing (cargo build --release --bin pixelmill)")
    data = Path(tempfile.mkdtemp(prefix="pixelmill-data-", dir=work))
    addr = f"127.0.0.1:{port}"
    # PIXELMILL_LISTEN is today's name of the listen address; PIXELMILL_BIND the planned one.
    # Renders are fetched by wrk without a key, as a CDN would fetch public renditions: unsigned
    # render URLs that name their tenant (the signature check is one HMAC, not what is measured).
    env = _base_env(PIXELMILL_BIND=addr, PIXELMILL_LISTEN=addr, PIXELMILL_DATA_DIR=str(data),
                    PIXELMILL_BOOTSTRAP_KEY=BENCH_KEY, PIXELMILL_RENDER_UNSIGNED="true")
    if not cached:
        env.update(PIXELMILL_RENDER_CACHE_BYTES="0", PIXELMILL_RENDER_STORE="false")
    logfile = work / f"pixelmill-{'warm-cache' if cached else 'uncached'}.log"
    p = start([str(exe), "serve"], env, logfile)
    base = f"http://{addr}"
    return p, logfile, f"{base}/healthz", base  # the render URL needs an upload: _pixelmill_url


def _pixelmill_urls(base: str, serve_dir: Path) -> list[str]:
    """Upload every variant; their render URLs."""
    urls = []
    for name in variant_names():
        status, _, body = http("POST", f"{base}/v1/images", body=(serve_dir / name).read_bytes(),
                               headers={"content-type": "image/jpeg",
                                        "authorization": f"Bearer {BENCH_KEY}"}, timeout=60)
        if status not in (200, 201):
            raise Skip(f"upload POST /v1/images answered {status}: {body[:300]!r}")
        image_id = json.loads(body)["id"]
        urls.append(f"{base}/v1/images/{image_id}/render?ops=resize:width={TARGET_WIDTH}&format=jpeg&quality=80&tenant=default")
    status, _, body = http("GET", urls[0])
    if status == 404:
        raise Skip(f"GET {urls[0]} answered 404 (render endpoint not there yet?): {body[:200]!r}")
    return urls


def server_bin() -> Path:
    return Path(os.environ.get("PIXELMILL_BENCH_SERVER_BIN", TARGET / "release" / "pixelmill")).resolve()


def pixelmill_help_note() -> str | None:
    exe = server_bin()
    try:
        h = subprocess.run([str(exe), "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    missing = [v for v in ("PIXELMILL_RENDER_CACHE_BYTES", "PIXELMILL_RENDER_STORE") if v not in h]
    if missing:
        return (f"`pixelmill serve --help` does not list {', '.join(missing)}; the uncached run may "
                f"be served from a cache")
    return None


PEERS = {"imgproxy": peer_imgproxy, "thumbor": peer_thumbor, "ipx": peer_ipx}


def phase_service(ctx: Ctx, imgs: dict[str, Path], order: list[str], node_dir: Path,
                  gobin: Path) -> None:
    tools = [t for t in order if t in ctx.tools]
    if not tools:
        return
    if not shutil.which("wrk"):
        ctx.skip("all", "service", "wrk is not installed (apt-get install wrk)")
        return
    work = ctx.workdir / "service"
    serve_dir = work / "images"
    serve_dir.mkdir(parents=True, exist_ok=True)
    write_variants(imgs["photo1080"], serve_dir)
    warm_s, load_s = (1, 3) if ctx.quick else (3, 15)
    ctx.note_cpu("service")
    runs = []
    for t in tools:
        if t == "pixelmill":
            runs += [("pixelmill", "uncached"), ("pixelmill", "warm-cache")]
        else:
            runs.append((t, "uncached"))
    for tool, variant in runs:
        what = f"service/{variant}"
        port = free_port()
        p = None
        try:
            if tool == "pixelmill":
                note = pixelmill_help_note()
                if note and variant == "uncached":
                    log(f"warning: {note}")
                p, logfile, ready, base = peer_pixelmill(port, serve_dir, work,
                                                         cached=(variant != "uncached"))
            else:
                note = None
                p, logfile, ready, urls = PEERS[tool](port=port, serve_dir=serve_dir, work=work,
                                                      node_dir=node_dir, gobin=gobin)
            err = wait_ready(ready, p, logfile)
            if err:
                raise Skip(err)
            if tool == "pixelmill":
                urls = _pixelmill_urls(base, serve_dir)
            for u in urls:  # every URL wrk will send must give the right answer
                err, size = check_jpeg_width(u)
                if err:
                    raise Skip(f"GET {u}: {err}")
            url = urls[0]
            log(f"service {tool} ({variant}): {url} (and {len(urls) - 1} more) -> JPEG "
                f"{TARGET_WIDTH} px wide, {size} bytes; warm-up {warm_s}s, load {load_s}s")
            script = wrk_script(urls, work / f"wrk-{tool}-{variant}.lua")
            wrk(urls, script, warm_s, latency=False)
            res, raw = wrk(urls, script, load_s, latency=True)
            rec = {"kind": "service", "tool": tool, "variant": variant, "url": url,
                   "distinct_urls": len(urls),
                   "response_bytes": size, "peak_rss_kb": peak_rss_kb(p.pid),
                   "wrk": f"-t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{load_s}s", **res}
            if note:
                rec["note"] = note
            ctx.record(rec)
            (work / f"wrk-{tool}-{variant}.txt").write_text(raw)
            log(f"  {res.get('req_per_s')} req/s, p50 {res.get('p50_ms')} ms, p99 {res.get('p99_ms')} ms, "
                f"non-2xx/3xx {res.get('non_2xx_3xx')}, peak RSS {rec['peak_rss_kb'] / 1024:.0f} MiB")
        except Skip as e:
            ctx.skip(tool, what, str(e))
        except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as e:
            ctx.skip(tool, what, f"{type(e).__name__}: {e}")
        finally:
            if p is not None:
                stop(p)
