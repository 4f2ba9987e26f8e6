#!/usr/bin/env python3
"""Writes reference.txt: the RGBA8 pixels Pillow (an independent decoder) produces for every valid
PngSuite file, as `name width height sha256(rgba) exact|near` lines.

`near` marks 16-bit sources: Pillow reduces them to 8 bits by truncation while pixelmill rounds, so
the Rust test compares those within +-1 against raw/<sha256[:16]>.rgba (deduplicated by content).

Pillow's own I;16 -> RGBA conversion clips samples to 0..255 instead of scaling, so for 16-bit
greyscale we take Pillow's decoded 16-bit samples and scale them here (high byte, tRNS -> alpha 0).

Regenerate with:
    python3 -m venv /tmp/pilvenv && /tmp/pilvenv/bin/pip install pillow
    /tmp/pilvenv/bin/python make_reference.py
"""
import glob
import hashlib
import os
import struct

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def rgba8(path):
    im = Image.open(path)
    im.load()
    if im.mode != "I;16":
        return im.convert("RGBA").tobytes()
    samples = struct.unpack("<%dH" % (im.width * im.height), im.tobytes())
    key = im.info.get("transparency")
    out = bytearray()
    for v in samples:
        g = v >> 8
        out += bytes((g, g, g, 0 if v == key else 255))
    return bytes(out)


def main():
    os.makedirs(os.path.join(HERE, "raw"), exist_ok=True)
    lines = []
    for path in sorted(glob.glob(os.path.join(HERE, "*.png"))):
        name = os.path.basename(path)
        if name.startswith("x"):
            continue  # deliberately corrupt: must be rejected, no reference pixels
        pixels = rgba8(path)
        width, height = Image.open(path).size
        digest = hashlib.sha256(pixels).hexdigest()
        sixteen_bit = Image.open(path).info.get("bit_depth") == 16 or name[6:8] == "16"
        if sixteen_bit:
            with open(os.path.join(HERE, "raw", digest[:16] + ".rgba"), "wb") as f:
                f.write(pixels)
        lines.append(f"{name} {width} {height} {digest} {'near' if sixteen_bit else 'exact'}")
    with open(os.path.join(HERE, "reference.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
