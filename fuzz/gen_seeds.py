#!/usr/bin/env python3
"""Regenerates the committed seed corpora under fuzz/corpus/<target>/.

Needs Pillow (scripts/fuzz never runs this; the seeds are committed). For example:
    python3 -m venv ~/.cache/pixelmill/pillow-venv
    ~/.cache/pixelmill/pillow-venv/bin/pip install pillow
    ~/.cache/pixelmill/pillow-venv/bin/python fuzz/gen_seeds.py

Seeds are deliberately tiny (a few dozen pixels a side): the fuzzer mutates faster on small
inputs, and every decoder feature we want covered (subsampling, progressive, palettes, alpha,
compression schemes, animation, EXIF orientation) shows up at any size.
"""
import io
import shutil
import struct
import sys
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
PNGSUITE = ROOT / "crates" / "pixelmill-engine" / "testdata" / "pngsuite"

# A representative slice of PngSuite: every colour type and bit depth, interlacing, odd sizes,
# ancillary chunks, zlib levels, and the deliberately corrupt x* files.
PNGSUITE_PICKS = """
basn0g01 basn0g02 basn0g04 basn0g08 basn0g16 basn2c08 basn2c16 basn3p01 basn3p02 basn3p04
basn3p08 basn4a08 basn4a16 basn6a08 basn6a16 basi0g16 basi2c08 basi3p08 basi4a16 basi6a08
s01i3p01 s07i3p02 s35i3p04 tbbn3p08 tbrn2c08 tm3n3p02 tp1n3p08 g04n3p04 cs3n2c16 cdsn2c08
ccwn3p08 ch1n3p04 cm0n0g04 ct1n0g04 exif2c08 f02n2c08 f04n0g08 oi4n2c16 z09n2c08 ps2n2c16
pp0n2c16 bggn4a16 xc9n2c08 xcrn0g04 xd3n2c08 xdtn0g01 xhdn0g08 xlfn0g04 xs2n0g01 xcsn0g01
""".split()


def pattern(w, h, mode="RGB"):
    """Gradients plus a few shapes, so lossy codecs have edges and flat areas to chew on."""
    img = Image.new("RGBA", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = (x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x ^ y) * 8 % 256,
                        255 if (x + y) % 7 else 96)
    d = ImageDraw.Draw(img)
    d.ellipse((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=(250, 40, 40, 200))
    d.line((0, h - 1, w - 1, 0), fill=(0, 0, 0, 255))
    return img.convert(mode)


def save(target, name, img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    write(target, name, buf.getvalue())


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def frames(n, w, h, mode="RGB"):
    out = []
    for i in range(n):
        f = pattern(w, h, "RGBA")
        ImageDraw.Draw(f).rectangle((i * 3, i * 2, i * 3 + 5, i * 2 + 4), fill=(0, 200, 0, 255))
        out.append(f.convert(mode))
    return out


def exif_orientation(value):
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def jpeg():
    t = "jpeg"
    save(t, "baseline-420.jpg", pattern(24, 16), "JPEG", quality=75)
    save(t, "baseline-444.jpg", pattern(17, 13), "JPEG", quality=90, subsampling=0)
    save(t, "baseline-422.jpg", pattern(33, 9), "JPEG", quality=60, subsampling=1)
    save(t, "progressive.jpg", pattern(32, 24), "JPEG", quality=70, progressive=True)
    save(t, "optimized.jpg", pattern(20, 20), "JPEG", quality=50, optimize=True)
    save(t, "gray.jpg", pattern(15, 11, "L"), "JPEG", quality=80)
    save(t, "gray-progressive.jpg", pattern(16, 16, "L"), "JPEG", progressive=True)
    save(t, "cmyk.jpg", pattern(16, 8, "CMYK"), "JPEG", quality=80)
    save(t, "exif-orient6.jpg", pattern(16, 8), "JPEG", exif=exif_orientation(6))
    save(t, "exif-orient3.jpg", pattern(9, 7), "JPEG", exif=exif_orientation(3))
    # Restart markers (DRI) every 2 MCUs: Pillow has no option, so splice a DRI segment in.
    buf = io.BytesIO()
    pattern(48, 16).save(buf, "JPEG", quality=70)
    data = buf.getvalue()
    sof = data.index(b"\xff\xc0")
    write(t, "dri-no-rst.jpg", data[:sof] + b"\xff\xdd\x00\x04\x00\x02" + data[sof:])
    save(t, "tiny-1x1.jpg", pattern(1, 1), "JPEG")
    save(t, "q100.jpg", pattern(8, 8), "JPEG", quality=100)
    save(t, "icc.jpg", pattern(8, 8), "JPEG", icc_profile=b"\0" * 64)


def png():
    t = "png"
    for name in PNGSUITE_PICKS:
        src = PNGSUITE / f"{name}.png"
        if src.exists():
            shutil.copyfile(src, CORPUS / t / f"{name}.png")
    save(t, "apng-3frames.png", frames(3, 12, 8)[0], "PNG", save_all=True,
         append_images=frames(3, 12, 8)[1:], duration=50, loop=0)
    save(t, "palette-trns.png", pattern(10, 10, "RGBA").quantize(16), "PNG", transparency=0)
    save(t, "la.png", pattern(9, 9, "LA"), "PNG")
    save(t, "rgba-interlaced.png", pattern(13, 11, "RGBA"), "PNG", interlace=1)
    save(t, "i16.png", pattern(8, 8, "L").convert("I;16"), "PNG")


def gif():
    t = "gif"
    save(t, "single.gif", pattern(16, 12, "P"), "GIF")
    save(t, "interlaced.gif", pattern(17, 9, "P"), "GIF", interlace=True)
    save(t, "transparent.gif", pattern(12, 12, "RGBA").quantize(8), "GIF", transparency=0)
    fs = [f.quantize(16) for f in frames(4, 14, 10)]
    save(t, "animated-4.gif", fs[0], "GIF", save_all=True, append_images=fs[1:], duration=40,
         loop=0, disposal=2)
    fs = [f.quantize(4) for f in frames(3, 10, 10)]
    save(t, "animated-local-palettes.gif", fs[0], "GIF", save_all=True, append_images=fs[1:],
         duration=[10, 20, 30], optimize=False, disposal=[0, 1, 3])
    save(t, "gray.gif", pattern(8, 8, "L"), "GIF")
    save(t, "bilevel.gif", pattern(16, 4, "1"), "GIF")
    # GIF87a header with the same body.
    buf = io.BytesIO()
    pattern(6, 6, "P").save(buf, "GIF")
    write(t, "gif87a.gif", b"GIF87a" + buf.getvalue()[6:])


def webp():
    t = "webp"
    save(t, "lossy.webp", pattern(24, 16), "WEBP", quality=60)
    save(t, "lossy-alpha.webp", pattern(16, 16, "RGBA"), "WEBP", quality=70)
    save(t, "lossless.webp", pattern(16, 12), "WEBP", lossless=True)
    save(t, "lossless-alpha.webp", pattern(13, 7, "RGBA"), "WEBP", lossless=True)
    save(t, "lossy-exact-alpha.webp", pattern(12, 12, "RGBA"), "WEBP", quality=50, exact=True)
    save(t, "animated.webp", frames(3, 12, 8, "RGBA")[0], "WEBP", save_all=True,
         append_images=frames(3, 12, 8, "RGBA")[1:], duration=50, loop=0, quality=50)
    save(t, "animated-lossless.webp", frames(2, 8, 8)[0], "WEBP", save_all=True,
         append_images=frames(2, 8, 8)[1:], duration=50, lossless=True)
    save(t, "icc-exif.webp", pattern(8, 8), "WEBP", icc_profile=b"\0" * 32,
         exif=exif_orientation(6))
    save(t, "tiny-1x1.webp", pattern(1, 1), "WEBP", lossless=True)


def tiff():
    t = "tiff"
    save(t, "raw-rgb.tif", pattern(12, 8), "TIFF")
    save(t, "lzw-rgb.tif", pattern(16, 12), "TIFF", compression="tiff_lzw")
    save(t, "deflate-rgba.tif", pattern(10, 10, "RGBA"), "TIFF", compression="tiff_adobe_deflate")
    save(t, "packbits-gray.tif", pattern(14, 6, "L"), "TIFF", compression="packbits")
    save(t, "lzw-predictor.tif", pattern(16, 8), "TIFF", compression="tiff_lzw",
         tiffinfo={317: 2})
    save(t, "bilevel-g4.tif", pattern(32, 8, "1"), "TIFF", compression="group4")
    save(t, "bilevel-raw.tif", pattern(9, 5, "1"), "TIFF")
    save(t, "palette.tif", pattern(8, 8, "P"), "TIFF")
    save(t, "cmyk.tif", pattern(8, 6, "CMYK"), "TIFF")
    save(t, "gray16.tif", pattern(8, 8, "L").convert("I;16"), "TIFF")
    save(t, "float32.tif", pattern(6, 6, "L").convert("F"), "TIFF")
    save(t, "jpeg-compressed.tif", pattern(16, 16), "TIFF", compression="jpeg")
    save(t, "multipage.tif", frames(2, 8, 8)[0], "TIFF", save_all=True,
         append_images=frames(2, 8, 8)[1:])
    save(t, "orient6.tif", pattern(8, 4), "TIFF", exif=exif_orientation(6))
    # Big-endian (MM) TIFF, uncompressed RGB, written by hand.
    w, h = 4, 3
    pix = bytes(pattern(w, h).tobytes())
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, 0), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 0), (277, 3, 1, 3), (278, 3, 1, h), (279, 4, 1, len(pix))]
    ifd_off = 8
    ifd_len = 2 + 12 * len(entries) + 4
    bps_off = ifd_off + ifd_len
    data_off = bps_off + 6
    out = bytearray(b"MM\x00\x2a" + struct.pack(">I", ifd_off))
    out += struct.pack(">H", len(entries))
    for tag, typ, count, val in entries:
        if tag == 258:
            val = bps_off
            out += struct.pack(">HHII", tag, typ, count, val)
        elif tag == 273:
            out += struct.pack(">HHII", tag, typ, count, data_off)
        elif typ == 3:
            out += struct.pack(">HHIHH", tag, typ, count, val, 0)
        else:
            out += struct.pack(">HHII", tag, typ, count, val)
    out += struct.pack(">I", 0)
    out += struct.pack(">HHH", 8, 8, 8)
    out += pix
    write(t, "big-endian-raw.tif", bytes(out))


def bmp_bytes(w, h, bpp, pixels, palette=b"", compression=0, top_down=False, header_size=40,
              masks=None):
    """A BITMAPINFOHEADER (or V4/V5 when header_size says so) BMP around raw pixel data."""
    extra = b""
    if masks is not None:
        extra = struct.pack("<IIII", *masks) + b"\0" * (header_size - 40 - 16)
    elif header_size > 40:
        extra = b"\0" * (header_size - 40)
    info = struct.pack("<IiiHHIIiiII", header_size, w, -h if top_down else h, 1, bpp,
                       compression, len(pixels), 2835, 2835, len(palette) // 4, 0) + extra
    off = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", off + len(pixels), 0, 0, off) + info + palette + pixels


def bmp():
    t = "bmp"
    save(t, "rgb24.bmp", pattern(13, 7), "BMP")
    save(t, "pal8.bmp", pattern(10, 6, "P"), "BMP")
    save(t, "gray8.bmp", pattern(9, 9, "L"), "BMP")
    save(t, "mono1.bmp", pattern(17, 5, "1"), "BMP")
    save(t, "rgba32.bmp", pattern(8, 8, "RGBA"), "BMP")
    # Hand-made variants Pillow does not write.
    pal = b"".join(struct.pack("<BBBB", i * 16, 255 - i * 16, i * 8, 0) for i in range(16))
    # 4-bit palette, 8x4, rows padded to 4 bytes.
    rows = b"".join(bytes([(2 * x) << 4 | (2 * x + 1) & 15 for x in range(4)]) for _ in range(4))
    write(t, "pal4.bmp", bmp_bytes(8, 4, 4, rows, pal))
    # Top-down 24-bit.
    img = pattern(5, 3)
    rows = b""
    for y in range(3):
        row = b"".join(bytes(img.getpixel((x, y))[::-1]) for x in range(5))
        rows += row + b"\0" * ((4 - len(row) % 4) % 4)
    write(t, "topdown24.bmp", bmp_bytes(5, 3, 24, rows, top_down=True))
    # RLE8: runs, an absolute run, end of line, delta, end of bitmap.
    pal256 = b"".join(struct.pack("<BBBB", i, i, 255 - i, 0) for i in range(256))
    rle8 = (b"\x04\x05" + b"\x00\x03\x01\x02\x03\x00" + b"\x01\x09" + b"\x00\x00"
            + b"\x08\x10" + b"\x00\x00" + b"\x00\x02\x02\x01" + b"\x02\x20" + b"\x00\x01")
    write(t, "rle8.bmp", bmp_bytes(8, 4, 8, rle8, pal256, compression=1))
    # RLE4.
    rle4 = b"\x06\x12" + b"\x00\x04\x34\x56" + b"\x00\x00" + b"\x08\x77" + b"\x00\x01"
    write(t, "rle4.bmp", bmp_bytes(10, 2, 4, rle4, pal, compression=2))
    # 16-bit BI_BITFIELDS 565 with a V4 header, and 32-bit bitfields with alpha in a V5 header.
    px565 = b"".join(struct.pack("<H", (x * 4 & 31) << 11 | (y * 8 & 63) << 5 | 7)
                     for y in range(4) for x in range(6))
    write(t, "rgb565-v4.bmp", bmp_bytes(6, 4, 16, px565, compression=3, header_size=108,
                                        masks=(0xF800, 0x07E0, 0x001F, 0)))
    px32 = b"".join(struct.pack("<I", (x * 40) << 24 | (y * 60) << 16 | 0x80 << 8 | 0xC0)
                    for y in range(3) for x in range(3))
    write(t, "argb32-v5.bmp", bmp_bytes(3, 3, 32, px32, compression=3, header_size=124,
                                        masks=(0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000)))
    # Plain 16-bit (555, no masks).
    px555 = b"".join(struct.pack("<H", (x * 3) << 10 | (y * 5) << 5 | 9)
                     for y in range(2) for x in range(2))
    write(t, "rgb555.bmp", bmp_bytes(2, 2, 16, px555))
    # OS/2 v1 (BITMAPCOREHEADER, 12 bytes) 24-bit.
    core = struct.pack("<IHHHH", 12, 2, 2, 1, 24)
    body = b"\x10\x20\x30\x40\x50\x60\0\0" * 2
    write(t, "os2-core24.bmp",
          b"BM" + struct.pack("<IHHI", 26 + len(body), 0, 0, 26) + core + body)


def pipeline():
    t = "pipeline"
    seeds = {
        "resize": "resize:width=300,height=200,fit=cover",
        "resize-contain": "resize:width=7|grayscale",
        "crop-rotate": "crop:x=1,y=1,width=4,height=3|rotate:degrees=90|flip|flop",
        "tones": "brightness:amount=0.2|contrast:amount=-0.5|sepia|invert",
        "blur-sharpen": "blur:sigma=2|sharpen:sigma=1.5,amount=0.8",
        "expr-invert": "expr:expr=\"r = 255 - r; g = 255 - g; b = 255 - b\"",
        "expr-funcs": "expr:expr='let t = x / width; r = mix(r, 255, t); g = clamp(g * 1.2, 0, 255); "
                      "b = if(y < height / 2, sqrt(b) * 16, pow(b / 255, 2.2) * 255); "
                      "a = smoothstep(0, 255, a) * 255'",
        "expr-ternary": "expr:expr='r = x % 2 == 0 && y % 2 == 1 ? 255 : 0; g = !(r > 10) || b >= 3; "
                        "b = min(r, g, b, 4) + max(1, 2) - abs(-3) + floor(1.5) + ceil(0.5) + "
                        "round(2.5) + sin(x) + cos(y) + tan(1) + exp(0) + log(1) + step(3, x)'",
        "expr-comments": "expr:expr='# comment\nr = (g +\n b) / 2\nlet k = -+-1; a = k * 255'",
        "colour-ops": "gamma:gamma=2.2|saturation:factor=1.5|hue_rotate:degrees=-90|"
                      "tint:color='#ff8800',strength=0.5|duotone:shadow=#102030,highlight=#ffeedd",
        "levels-ops": "threshold:level=128|posterize:levels=4|pixelate:size=3|"
                      "vignette:strength=0.8,radius=1.2|edges|emboss:strength=2",
        "kernel-ops": "convolve:kernel='1 2 1 2 4 2 1 2 1',divisor=16,offset=0|median:radius=2|"
                      "unsharp:sigma=1,amount=1,threshold=2",
        "geometry-ops": "pad:all=3,background=#00000080|pad:top=1,right=2,bottom=3,left=4|"
                        "trim:tolerance=10|round_corners:radius=5|smart_crop:width=16,height=9",
        "spaces": "  resize : width = 20 , height=10 | grayscale ",
        "unknown": "blurr:sigma=true,other=false",
        "bad-quote": "expr:expr=\"r = 1",
    }
    for name, text in seeds.items():
        write(t, name + ".txt", text.encode())
    # Raw expr programs (selector byte 0x01, see fuzz_targets/pipeline.rs).
    exprs = {
        "raw-expr-gradient": "r = x * 255 / width; g = y * 255 / height; b = (x + y) % 256",
        "raw-expr-nested": "r = ((((r + 1) * 2) - 3) / 4) % 5; g = r ? g : -g; a = a / 0",
        "raw-expr-lets": "let u = x - width / 2\nlet v = y - height / 2\n"
                         "r = sqrt(u * u + v * v) < 3 ? 255 : r",
    }
    for name, text in exprs.items():
        write(t, name + ".bin", b"\x01" + text.encode())


def main():
    if CORPUS.exists():
        for d in CORPUS.iterdir():
            shutil.rmtree(d)
    (CORPUS / "png").mkdir(parents=True, exist_ok=True)
    for gen in (jpeg, png, gif, webp, tiff, bmp, pipeline):
        gen()
    total = 0
    for d in sorted(CORPUS.iterdir()):
        files = list(d.iterdir())
        size = sum(f.stat().st_size for f in files)
        total += size
        print(f"{d.name:9} {len(files):3} files {size:7} bytes")
    print(f"total     {total} bytes")
    if total > 200_000:
        sys.exit("seed corpora over 200 KB; make the seeds smaller")


if __name__ == "__main__":
    main()
