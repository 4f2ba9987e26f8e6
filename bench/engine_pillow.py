"""Pillow peer for the engine benchmarks: one task, N iterations from in-memory bytes, one JSON line
on stdout in the same shape as `pixelmill-bench engine`.

    taskset -c 0 python engine_pillow.py --task T --input F --iterations N [--write-output F]

The JPEG thumbnail uses `draft()` (DCT-domain downscale on decode) the way thumbor's Pillow engine
does, then LANCZOS. Pillow is single-threaded for all of these.
"""
from __future__ import annotations

import argparse
import io
import json
import resource
import time

from PIL import Image, ImageFilter, ImageOps, ImageSequence


def thumbnail(data: bytes) -> bytes:
    im = Image.open(io.BytesIO(data))
    im.draft("RGB", (400, 400))  # like thumbor's PIL engine: shrink on load
    im = im.convert("RGB")
    im.thumbnail((400, 400), Image.Resampling.LANCZOS, reducing_gap=None)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=80)
    return out.getvalue()


def webp800(data: bytes) -> bytes:
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w = 800
    h = max(1, round(im.height * w / im.width))
    im = im.resize((w, h), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    im.save(out, "WEBP", quality=80)
    return out.getvalue()


def blur5(data: bytes) -> bytes:
    im = Image.open(io.BytesIO(data)).convert("RGB")
    im = im.filter(ImageFilter.GaussianBlur(5))  # radius = standard deviation in Pillow
    out = io.BytesIO()
    im.save(out, "JPEG", quality=80)
    return out.getvalue()


def gif240(data: bytes) -> bytes:
    src = Image.open(io.BytesIO(data))
    w = 240
    h = max(1, round(src.height * w / src.width))
    frames, durations = [], []
    for frame in ImageSequence.Iterator(src):
        durations.append(frame.info.get("duration", 40))
        frames.append(frame.convert("RGB").resize((w, h), Image.Resampling.LANCZOS))
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=durations,
                   loop=src.info.get("loop", 0))
    return out.getvalue()


def invert(data: bytes) -> bytes:
    im = ImageOps.invert(Image.open(io.BytesIO(data)).convert("RGB"))
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def jpeg_decode_floor(data: bytes) -> bytes:
    """Only the JPEG decode at 1/8 scale (libjpeg DCT scaling via draft()), raw RGB out."""
    im = Image.open(io.BytesIO(data))
    im.draft("RGB", (im.width // 8, im.height // 8))
    return im.tobytes()


TASKS = {"thumbnail": thumbnail, "webp800": webp800, "blur5": blur5, "gif240": gif240,
         "invert": invert, "jpeg-decode-floor": jpeg_decode_floor}


def peak_rss_kb() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument("--input", required=True)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--write-output")
    a = p.parse_args()
    run = TASKS[a.task]
    data = open(a.input, "rb").read()
    out = b""
    for _ in range(a.warmup):
        out = run(data)
    times = []
    t0 = time.perf_counter()
    for _ in range(a.iterations):
        s = time.perf_counter()
        out = run(data)
        times.append((time.perf_counter() - s) * 1000)
    total_ms = (time.perf_counter() - t0) * 1000
    if a.write_output:
        with open(a.write_output, "wb") as f:
            f.write(out)
    times.sort()
    ms = total_ms / a.iterations
    print(json.dumps({
        "tool": "pillow", "task": a.task, "ms_per_op": round(ms, 3), "ops_per_s": round(1000 / ms, 3),
        "peak_rss_kb": peak_rss_kb(), "output_bytes": len(out), "iterations": a.iterations,
        "ms_median": round(times[len(times) // 2], 3), "ms_min": round(times[0], 3),
    }), flush=True)


if __name__ == "__main__":
    main()
