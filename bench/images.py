"""Deterministic test images for the bench harness.

Every image comes from a fixed seed, so two machines with the same Pillow/numpy get the same bytes
(the JPEG encoder version can change the bytes, never the content). The file names carry a
generator version: bump GEN_VERSION when the recipe changes and the cache regenerates.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

GEN_VERSION = 1

NAMES = {
    "photo12mp": f"photo_4000x3000_v{GEN_VERSION}.jpg",
    "photo1080": f"photo_1920x1080_v{GEN_VERSION}.jpg",
    "alpha_png": f"alpha_1024x768_v{GEN_VERSION}.png",
    "anim_gif": f"anim_480x270x40_v{GEN_VERSION}.gif",
}


def _field(rng: np.random.Generator, w: int, h: int, cells: int) -> np.ndarray:
    """Smooth random field in [-1, 1]: `cells` random values across the width, bicubic upscaled."""
    cw = max(2, cells)
    ch = max(2, int(round(cells * h / w)))
    small = rng.standard_normal((ch, cw)).astype(np.float32)
    up = Image.fromarray(small, mode="F").resize((w, h), Image.BICUBIC)
    a = np.asarray(up, dtype=np.float32)
    return a / (np.abs(a).max() + 1e-6)


def photo(w: int, h: int, seed: int) -> Image.Image:
    """Photo-like RGB: smooth sky/ground gradients, 1/f multi-scale texture, hard-edged objects
    with their own texture, and sensor grain. Compresses like a photo (JPEG q90 of 12 MP ~3-5 MB)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    img = np.empty((h, w, 3), dtype=np.float32)
    horizon = 0.45 + 0.08 * _field(rng, w, 1, 6)[0][None, :]
    sky = np.stack([90 + 80 * y, 140 + 60 * y, 220 - 40 * y], axis=-1)
    ground = np.stack([70 + 60 * (1 - y), 95 + 50 * (1 - y), 40 + 20 * (1 - y)], axis=-1)
    mask = (y > horizon)[..., None]
    img[:] = np.where(mask, ground, sky)
    img += (30 * np.sin(2.1 * np.pi * x + 1.3) * np.cos(1.7 * np.pi * y))[..., None]
    # Coarse 1/f variation (light, terrain), stronger on the ground than in the sky.
    tex_gain = np.where(mask, 1.0, 0.3).astype(np.float32)[..., 0]
    for cells, amp in ((8, 40.0), (32, 22.0)):
        img += (amp * _field(rng, w, h, cells) * tex_gain)[..., None]
        img[..., 0] += 0.3 * amp * _field(rng, w, h, max(2, cells // 2)) * tex_gain
    # Hard-edged objects with their own colour and texture.
    obj = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(obj)
    s = w / 1000.0
    for i in range(14):
        cx, cy = rng.uniform(0, w), rng.uniform(0.35 * h, h)
        r = rng.uniform(30, 160) * s
        kind = i % 3
        if kind == 0:
            draw.ellipse([cx - r, cy - 0.7 * r, cx + r, cy + 0.7 * r], fill=i + 1)
        elif kind == 1:
            draw.rectangle([cx - r, cy - 1.6 * r, cx + 0.6 * r, cy + r], fill=i + 1)
        else:
            pts = [(cx + r * np.cos(t), cy + r * np.sin(t))
                   for t in np.linspace(0, 2 * np.pi, 7)[:-1] + rng.uniform(0, 1)]
            draw.polygon(pts, fill=i + 1)
    # Thin lines (wires, branches): high-contrast sharp edges.
    for _ in range(10):
        p = [(rng.uniform(0, w), rng.uniform(0, h)) for _ in range(2)]
        draw.line(p, fill=15, width=max(1, int(3 * s)))
    ids = np.asarray(obj)
    fine = _field(rng, w, h, w // 6)
    for i in range(1, 16):
        m = ids == i
        if not m.any():
            continue
        colour = rng.uniform(20, 235, size=3).astype(np.float32)
        shade = 0.75 + 0.25 * y.repeat(w, axis=1)[m]
        img[m] = colour * shade[:, None] + (25 * fine[m])[:, None]
    # Fine 1/f texture (foliage, fabric) everywhere outside the sky, after the objects so they
    # carry it too; then sensor grain.
    tex_gain = np.maximum(tex_gain, (ids > 0).astype(np.float32))
    for cells, amp in ((128, 14.0), (512, 10.0), (w // 4, 9.0), (w // 2, 8.0)):
        t = _field(rng, w, h, cells) * tex_gain
        img += (amp * t)[..., None]
        img[..., 1] += 0.4 * amp * _field(rng, w, h, cells) * tex_gain
    # Sensor grain: mostly luminance, a little chroma (JPEG's 4:2:0 drops most chroma noise).
    img += rng.normal(0.0, 5.0, size=(h, w, 1)).astype(np.float32)
    img += rng.normal(0.0, 2.0, size=img.shape).astype(np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="RGB")


def alpha_png(w: int, h: int, seed: int) -> Image.Image:
    base = photo(w, h, seed)
    rng = np.random.default_rng(seed + 1)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    a = 255 * np.clip(1.4 - 1.6 * np.hypot(x - 0.5, y - 0.5), 0, 1)
    a = a + 20 * _field(rng, w, h, 16)
    cut = Image.new("L", (w, h), 255)
    ImageDraw.Draw(cut).ellipse([0.1 * w, 0.1 * h, 0.3 * w, 0.35 * h], fill=0)
    a = np.minimum(a, np.asarray(cut, dtype=np.float32))
    rgba = np.dstack([np.asarray(base), np.clip(a, 0, 255).astype(np.uint8)])
    return Image.fromarray(rgba, mode="RGBA")


def anim_gif(w: int, h: int, frames: int, seed: int) -> list[Image.Image]:
    # Softened background: animated GIFs are usually cut from video, smoother than a raw photo.
    bg = np.asarray(photo(w, h, seed).filter(ImageFilter.GaussianBlur(1.2)), dtype=np.float32)
    out = []
    for f in range(frames):
        t = f / frames
        img = bg.copy()
        img[..., 2] = np.clip(img[..., 2] + 40 * np.sin(2 * np.pi * t), 0, 255)
        im = Image.fromarray(img.astype(np.uint8), mode="RGB")
        d = ImageDraw.Draw(im)
        cx = w * (0.1 + 0.8 * t)
        cy = h * (0.5 + 0.3 * np.sin(2 * np.pi * t))
        d.ellipse([cx - 30, cy - 30, cx + 30, cy + 30], fill=(240, 200, 40))
        d.rectangle([w * 0.7 - 20 * t, 20, w * 0.7 + 40, 80 + 60 * t], fill=(200, 30, 60))
        d.text((10, h - 20), f"frame {f:02d}", fill=(255, 255, 255))
        out.append(im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
    return out


def ensure_images(directory: Path, log=print) -> dict[str, Path]:
    """Generate any missing image into `directory`; return name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {k: directory / v for k, v in NAMES.items()}
    makers = {
        "photo12mp": lambda p: photo(4000, 3000, 12).save(p, "JPEG", quality=90),
        "photo1080": lambda p: photo(1920, 1080, 1080).save(p, "JPEG", quality=90),
        "alpha_png": lambda p: alpha_png(1024, 768, 768).save(p, "PNG", optimize=False),
        "anim_gif": lambda p: _save_gif(anim_gif(480, 270, 40, 270), p),
    }
    for key, path in paths.items():
        if path.exists() and path.stat().st_size > 0:
            continue
        log(f"generating {path.name}")
        tmp = path.with_suffix(path.suffix + ".tmp")
        makers[key](tmp)
        tmp.rename(path)
    return paths


def _save_gif(frames: list[Image.Image], path: Path) -> None:
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0,
                   optimize=False, disposal=1)


if __name__ == "__main__":
    import sys
    for k, p in ensure_images(Path(sys.argv[1])).items():
        print(k, p, p.stat().st_size)
