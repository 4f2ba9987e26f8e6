//! Decodes a baseline JPEG at 1/8 or 1/4 scale, the thumbnailer's case, faster than libjpeg.
//!
//! At 1/8 scale an 8×8 block becomes one pixel: the block's mean, which is its DC coefficient.
//! Every AC coefficient must still be entropy-decoded to find where the next block starts, and
//! that is almost all of the work (libjpeg spends >80 % of a 1/8 decode in `decode_mcu`). Here
//! an AC symbol whose code and extra bits fit in [`LOOKAHEAD`] bits is consumed with one table
//! lookup, where libjpeg reads the code, then the extra bits, then sign-extends and stores it.
//!
//! Where a block gives more than one sample (1/4 scale, or subsampled chroma), each sample is
//! the mean of its part of the block, computed from the coefficients it depends on; that is what
//! libjpeg's reduced 1×1 and 2×2 IDCTs compute too, so those outputs match libjpeg's to within
//! rounding, and where libjpeg instead upsamples (4:2:2 chroma) or uses its 4×4 IDCT, these means
//! are closer to the full-size image's. Anything unusual (progressive or arithmetic coding,
//! 12-bit, CMYK or RGB colour, sampling ratios other than 1 and 2) returns `None` and the caller
//! decodes with libjpeg, as it also does for corrupt data, where libjpeg's tolerant decoder
//! decides what to show.

use std::sync::LazyLock;

use image::{RgbImage, RgbaImage};

use crate::bitmap::Bitmap;

/// Bits of lookahead in the combined code-plus-value tables: covers nearly every symbol of a
/// photo's AC data while the table (16 KiB) stays in L1. 10 bits measured 8 % slower.
const LOOKAHEAD: u32 = 12;

/// Zigzag position → natural (row-major) position in the 8×8 block.
const NATURAL_ORDER: [u8; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Why the fast path gave up; either way libjpeg decodes the file instead.
#[derive(Debug)]
struct GiveUp;

type Result<T> = std::result::Result<T, GiveUp>;

/// Decodes `bytes` at `scale`/8 (1/8 or 1/4) to RGB (`keep_rgb`) or RGBA of libjpeg's size for
/// that scale (`ceil(width * scale / 8)` across), or `None` where libjpeg must decode it.
pub(crate) fn decode(bytes: &[u8], scale: u8, keep_rgb: bool) -> Option<Bitmap> {
    if !(1..=2).contains(&scale) {
        return None;
    }
    let decoder = Decoder {
        scale: usize::from(scale),
        ..Decoder::default()
    };
    decoder.run(bytes, keep_rgb).ok()
}

#[derive(Default)]
struct Frame {
    width: usize,
    height: usize,
    components: Vec<Component>,
    h_max: usize,
    v_max: usize,
    mcus_x: usize,
    mcus_y: usize,
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
    quant_table: usize,
    /// The DC quantiser and the subsampled output's weights, latched at the component's first
    /// scan as libjpeg latches quantisation tables.
    quant: Option<Quant>,
    /// Output samples per block across and down: the scale's numerator, doubled where the
    /// component is subsampled.
    samples_x: usize,
    samples_y: usize,
    /// Blocks across and down, padded to whole MCUs.
    blocks_x: usize,
    blocks_y: usize,
    /// The output plane, `blocks_x * samples_x` across.
    samples: Vec<u8>,
    dc_prediction: i32,
}

struct Quant {
    dc: i32,
    /// Per zigzag position and output sample (up to 4×4 per block, row-major): the
    /// coefficient's weight in that sample's mean, dequantisation included.
    weights: Box<[[f32; 16]; 64]>,
}

impl Quant {
    fn new(table: &[u16; 64], samples_x: usize, samples_y: usize) -> Self {
        let (across, down) = (part_means(samples_x), part_means(samples_y));
        let mut weights = Box::new([[0f32; 16]; 64]);
        for (zigzag, &natural) in NATURAL_ORDER.iter().enumerate() {
            let (v, u) = (usize::from(natural / 8), usize::from(natural % 8));
            let q = f32::from(table[usize::from(natural)]);
            for oy in 0..samples_y {
                for ox in 0..samples_x {
                    weights[zigzag][oy * samples_x + ox] = q * across[u][ox] * down[v][oy];
                }
            }
        }
        Self {
            dc: i32::from(table[0]),
            weights,
        }
    }
}

#[derive(Default)]
struct Decoder {
    /// The numerator of the output scale, in eighths: 1 or 2.
    scale: usize,
    frame: Frame,
    dc_tables: [Option<Huffman>; 4],
    ac_tables: [Option<Huffman>; 4],
    quant_tables: [Option<[u16; 64]>; 4],
    restart_interval: usize,
    adobe_transform: Option<u8>,
}

impl Decoder {
    fn run(mut self, bytes: &[u8], keep_rgb: bool) -> Result<Bitmap> {
        if bytes.get(..2) != Some(&[0xFF, 0xD8]) {
            return Err(GiveUp);
        }
        let mut pos = 2;
        loop {
            let marker = next_marker(bytes, &mut pos)?;
            if marker == 0xD9 {
                break;
            }
            let length = usize::from(read_u16(bytes, pos)?);
            let segment = bytes.get(pos + 2..pos + length).ok_or(GiveUp)?;
            pos += length;
            match marker {
                0xC0 | 0xC1 => self.start_frame(segment)?,
                // Progressive (whose chroma needs AC refinement scans decoded to look right at
                // this scale), lossless, hierarchical and arithmetic-coded frames.
                0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return Err(GiveUp),
                0xC4 => self.define_huffman_tables(segment)?,
                0xDB => self.define_quant_tables(segment)?,
                0xDD => self.restart_interval = usize::from(read_u16(segment, 0)?),
                0xEE if segment.starts_with(b"Adobe") => {
                    self.adobe_transform = segment.get(11).copied();
                }
                0xDA => pos = self.scan(segment, bytes, pos)?,
                _ => {}
            }
        }
        self.to_bitmap(keep_rgb)
    }

    fn start_frame(&mut self, segment: &[u8]) -> Result<()> {
        let [precision, h0, h1, w0, w1, count, ref specs @ ..] = *segment else {
            return Err(GiveUp);
        };
        let (height, width) = (
            usize::from(u16::from_be_bytes([h0, h1])),
            usize::from(u16::from_be_bytes([w0, w1])),
        );
        let count = usize::from(count);
        if precision != 8
            || width == 0
            || height == 0
            || !(count == 1 || count == 3)
            || specs.len() < count * 3
            || !self.frame.components.is_empty()
        {
            return Err(GiveUp);
        }
        let mut components = Vec::with_capacity(count);
        for spec in specs.chunks_exact(3).take(count) {
            let (h, v) = if count == 1 {
                (1, 1)
            } else {
                (usize::from(spec[1] >> 4), usize::from(spec[1] & 15))
            };
            if !(1..=2).contains(&h) || !(1..=2).contains(&v) || spec[2] > 3 {
                return Err(GiveUp);
            }
            components.push(Component {
                id: spec[0],
                h,
                v,
                quant_table: usize::from(spec[2]),
                quant: None,
                samples_x: 0,
                samples_y: 0,
                blocks_x: 0,
                blocks_y: 0,
                samples: Vec::new(),
                dc_prediction: 0,
            });
        }
        // libjpeg reads three components as RGB, not YCbCr, when Adobe says so or the ids spell it.
        let ids: Vec<u8> = components.iter().map(|c| c.id).collect();
        if count == 3 && (self.adobe_transform == Some(0) || ids == b"RGB") {
            return Err(GiveUp);
        }
        let h_max = components.iter().map(|c| c.h).max().unwrap_or(1);
        let v_max = components.iter().map(|c| c.v).max().unwrap_or(1);
        let mcus_x = width.div_ceil(8 * h_max);
        let mcus_y = height.div_ceil(8 * v_max);
        for c in &mut components {
            let (ratio_x, ratio_y) = (h_max / c.h, v_max / c.v);
            if ratio_x * c.h != h_max || ratio_y * c.v != v_max {
                return Err(GiveUp);
            }
            c.blocks_x = mcus_x * c.h;
            c.blocks_y = mcus_y * c.v;
            c.samples_x = self.scale * ratio_x;
            c.samples_y = self.scale * ratio_y;
            c.samples = vec![0; c.blocks_x * c.samples_x * c.blocks_y * c.samples_y];
        }
        self.frame = Frame {
            width,
            height,
            components,
            h_max,
            v_max,
            mcus_x,
            mcus_y,
        };
        Ok(())
    }

    fn define_huffman_tables(&mut self, mut segment: &[u8]) -> Result<()> {
        while let [class_and_id, ref rest @ ..] = *segment {
            let counts: [u8; 16] = rest
                .get(..16)
                .ok_or(GiveUp)?
                .try_into()
                .map_err(|_| GiveUp)?;
            let total: usize = counts.iter().map(|&n| usize::from(n)).sum();
            let symbols = rest.get(16..16 + total).ok_or(GiveUp)?;
            let table = Huffman::new(&counts, symbols)?;
            let id = usize::from(class_and_id & 15);
            match (class_and_id >> 4, id) {
                (0, 0..=3) => self.dc_tables[id] = Some(table),
                (1, 0..=3) => self.ac_tables[id] = Some(table),
                _ => return Err(GiveUp),
            }
            segment = &rest[16 + total..];
        }
        Ok(())
    }

    fn define_quant_tables(&mut self, mut segment: &[u8]) -> Result<()> {
        while let [precision_and_id, ref rest @ ..] = *segment {
            let id = usize::from(precision_and_id & 15);
            let wide = precision_and_id >> 4 == 1;
            let len = if wide { 128 } else { 64 };
            let values = rest.get(..len).ok_or(GiveUp)?;
            let mut table = [0u16; 64];
            for (zigzag, &natural) in NATURAL_ORDER.iter().enumerate() {
                table[usize::from(natural)] = if wide {
                    u16::from_be_bytes([values[2 * zigzag], values[2 * zigzag + 1]])
                } else {
                    u16::from(values[zigzag])
                };
            }
            *self.quant_tables.get_mut(id).ok_or(GiveUp)? = Some(table);
            segment = &rest[len..];
        }
        Ok(())
    }

    /// Decodes one scan whose entropy-coded data starts at `data_start`; returns where its data
    /// ends.
    fn scan<'t>(&'t mut self, header: &[u8], bytes: &[u8], data_start: usize) -> Result<usize> {
        let [count, ref rest @ ..] = *header else {
            return Err(GiveUp);
        };
        let count = usize::from(count);
        let selectors = rest.get(..2 * count).ok_or(GiveUp)?;
        let &[spectral_start, spectral_end, approximation] =
            rest.get(2 * count..2 * count + 3).ok_or(GiveUp)?
        else {
            return Err(GiveUp);
        };
        let frame = &mut self.frame;
        if frame.components.is_empty() || count == 0 || count > frame.components.len() {
            return Err(GiveUp);
        }
        let mut members = Vec::with_capacity(count);
        for selector in selectors.chunks_exact(2) {
            let index = frame
                .components
                .iter()
                .position(|c| c.id == selector[0])
                .ok_or(GiveUp)?;
            let component = &mut frame.components[index];
            if component.quant.is_none() {
                let table = self.quant_tables[component.quant_table].ok_or(GiveUp)?;
                component.quant =
                    Some(Quant::new(&table, component.samples_x, component.samples_y));
            }
            component.dc_prediction = 0;
            let table = |set: &'t [Option<Huffman>; 4], id: u8| set[usize::from(id & 3)].as_ref();
            members.push(ScanMember {
                component: index,
                dc: table(&self.dc_tables, selector[1] >> 4),
                ac: table(&self.ac_tables, selector[1] & 15),
            });
        }
        if (spectral_start, spectral_end, approximation) != (0, 63, 0) {
            return Err(GiveUp);
        }
        let mut reader = BitReader::new(bytes, data_start);
        // Non-interleaved scans cover only the component's own blocks, not the MCU padding.
        let (units_x, units_y) = if count == 1 {
            let c = &frame.components[members[0].component];
            (
                (frame.width * c.h).div_ceil(8 * frame.h_max),
                (frame.height * c.v).div_ceil(8 * frame.v_max),
            )
        } else {
            (frame.mcus_x, frame.mcus_y)
        };
        let mut until_restart = self.restart_interval;
        for unit_y in 0..units_y {
            for unit_x in 0..units_x {
                if self.restart_interval > 0 {
                    if until_restart == 0 {
                        reader.restart()?;
                        for m in &members {
                            frame.components[m.component].dc_prediction = 0;
                        }
                        until_restart = self.restart_interval;
                    }
                    until_restart -= 1;
                }
                for m in &members {
                    let component = &mut frame.components[m.component];
                    let (block_w, block_h) = if count == 1 {
                        (1, 1)
                    } else {
                        (component.h, component.v)
                    };
                    for by in 0..block_h {
                        for bx in 0..block_w {
                            let block = (unit_x * block_w + bx, unit_y * block_h + by);
                            decode_block(&mut reader, component, block, m.dc, m.ac)?;
                        }
                    }
                }
            }
        }
        Ok(reader.end())
    }

    fn to_bitmap(&self, keep_rgb: bool) -> Result<Bitmap> {
        let frame = &self.frame;
        let scale = self.scale;
        let (out_w, out_h) = (
            (frame.width * scale).div_ceil(8),
            (frame.height * scale).div_ceil(8),
        );
        let planes: Vec<&[u8]> = frame.components.iter().map(|c| &c.samples[..]).collect();
        let stride = frame.mcus_x * frame.h_max * scale;
        let channels = if keep_rgb { 3 } else { 4 };
        let mut pixels = vec![255; out_w * out_h * channels];
        for (y, row) in pixels.chunks_exact_mut(out_w * channels).enumerate() {
            let samples = y * stride..y * stride + out_w;
            let out = row.chunks_exact_mut(channels);
            match planes[..] {
                [gray] => {
                    for (px, &l) in out.zip(&gray[samples]) {
                        px[..3].fill(l);
                    }
                }
                [luma, cb, cr] => {
                    let ycc = luma[samples.clone()]
                        .iter()
                        .zip(&cb[samples.clone()])
                        .zip(&cr[samples]);
                    for (px, ((&y, &cb), &cr)) in out.zip(ycc) {
                        px[..3].copy_from_slice(&ycc_to_rgb(y, cb, cr));
                    }
                }
                _ => return Err(GiveUp),
            }
        }
        let (w, h) = (out_w as u32, out_h as u32);
        let bitmap = if keep_rgb {
            RgbImage::from_raw(w, h, pixels).map(Bitmap::Rgb)
        } else {
            RgbaImage::from_raw(w, h, pixels).map(Bitmap::Rgba)
        };
        bitmap.ok_or(GiveUp)
    }
}

struct ScanMember<'t> {
    component: usize,
    dc: Option<&'t Huffman>,
    ac: Option<&'t Huffman>,
}

/// Decodes the block at `(x, y)` (in blocks) and writes its output samples.
fn decode_block(
    reader: &mut BitReader,
    component: &mut Component,
    (x, y): (usize, usize),
    dc_table: Option<&Huffman>,
    ac_table: Option<&Huffman>,
) -> Result<()> {
    let (_, difference) = dc_table.ok_or(GiveUp)?.decode(reader)?;
    // Corrupt data can push the prediction anywhere; valid data stays within 12 bits.
    component.dc_prediction += difference;
    if component.dc_prediction.abs() > 1 << 15 {
        return Err(GiveUp);
    }
    let ac_table = ac_table.ok_or(GiveUp)?;
    let quant = component.quant.as_ref().ok_or(GiveUp)?;
    let (sx, sy) = (component.samples_x, component.samples_y);
    let stride = component.blocks_x * sx;
    if (sx, sy) == (1, 1) {
        // Only the DC term counts; the AC symbols are read past.
        reader.for_each_ac(ac_table, |_, _| {})?;
        // libjpeg's jpeg_idct_1x1: descale by 8 with rounding, then level-shift.
        let mean = ((component.dc_prediction * quant.dc + 4) >> 3) + 128;
        *component.samples.get_mut(y * stride + x).ok_or(GiveUp)? = mean.clamp(0, 255) as u8;
        return Ok(());
    }
    // Several samples per block: each part's mean, from the frequencies it depends on. This is
    // the hot loop of a 1/4-scale decode, so it is compiled for each shape of block.
    let block = Block {
        dc: component.dc_prediction as f32,
        quant,
        first: (y * sy) * stride + x * sx,
        stride,
    };
    let samples = &mut component.samples;
    match (sx, sy) {
        (1, 2) => block.means::<1, 2>(reader, ac_table, samples),
        (2, 1) => block.means::<2, 1>(reader, ac_table, samples),
        (2, 2) => block.means::<2, 2>(reader, ac_table, samples),
        (2, 4) => block.means::<2, 4>(reader, ac_table, samples),
        (4, 2) => block.means::<4, 2>(reader, ac_table, samples),
        (4, 4) => block.means::<4, 4>(reader, ac_table, samples),
        _ => Err(GiveUp),
    }
}

/// Where one block's output samples go.
struct Block<'q> {
    dc: f32,
    quant: &'q Quant,
    /// The index of its top-left sample in the component's plane, and the plane's row length.
    first: usize,
    stride: usize,
}

impl Block<'_> {
    /// Decodes the block's AC coefficients into the means of its `SX`×`SY` parts and writes them
    /// as samples.
    #[inline(always)]
    fn means<const SX: usize, const SY: usize>(
        &self,
        reader: &mut BitReader,
        ac_table: &Huffman,
        samples: &mut [u8],
    ) -> Result<()> {
        let weights = &self.quant.weights;
        let mut sums: [[f32; SX]; SY] = std::array::from_fn(|oy| {
            std::array::from_fn(|ox| 128.0 + self.dc * weights[0][oy * SX + ox])
        });
        reader.for_each_ac(ac_table, |k, value| {
            let w = &weights[k];
            for (oy, row) in sums.iter_mut().enumerate() {
                for (ox, sum) in row.iter_mut().enumerate() {
                    *sum += value as f32 * w[oy * SX + ox];
                }
            }
        })?;
        for (oy, row) in sums.iter().enumerate() {
            let at = self.first + oy * self.stride;
            let out: &mut [u8; SX] = samples
                .get_mut(at..at + SX)
                .and_then(|s| s.try_into().ok())
                .ok_or(GiveUp)?;
            for (sample, sum) in out.iter_mut().zip(row) {
                // Clamped first, so adding a half and truncating rounds to nearest.
                *sample = (sum.clamp(0.0, 255.0) + 0.5) as u8;
            }
        }
        Ok(())
    }
}

/// `part_mean` for every frequency and part of a block split in `parts` (1, 2 or 4), computed
/// once per process rather than per decode (cosines were a twentieth of a 1/4-scale decode).
fn part_means(parts: usize) -> &'static [[f32; 4]; 8] {
    static TABLES: LazyLock<[[[f32; 4]; 8]; 3]> = LazyLock::new(|| {
        std::array::from_fn(|split| {
            let parts = 1 << split;
            std::array::from_fn(|u| {
                std::array::from_fn(|part| {
                    if part < parts {
                        part_mean(u, part, parts)
                    } else {
                        0.0
                    }
                })
            })
        })
    });
    &TABLES[parts.trailing_zeros() as usize]
}

/// The 1-D weight of frequency `u` in the mean of part `part` of a block split in `parts` (1, 2
/// or 4), with the IDCT's normalisation (the 2-D product of two is 1/8 for the DC term).
fn part_mean(u: usize, part: usize, parts: usize) -> f32 {
    let scale = if u == 0 {
        std::f64::consts::FRAC_1_SQRT_2
    } else {
        1.0
    } / 2.0;
    let span = 8 / parts;
    let sum: f64 = (part * span..(part + 1) * span)
        .map(|n| ((2 * n + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos())
        .sum();
    (scale * sum / span as f64) as f32
}

/// JFIF YCbCr → RGB with libjpeg's fixed-point constants and rounding.
fn ycc_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    const ONE_HALF: i32 = 1 << 15;
    let (y, cb, cr) = (i32::from(y), i32::from(cb) - 128, i32::from(cr) - 128);
    let fix = |x: f64| (x * 65536.0 + 0.5) as i32;
    let r = y + ((fix(1.402) * cr + ONE_HALF) >> 16);
    let g = y + ((-fix(0.34414) * cb - fix(0.71414) * cr + ONE_HALF) >> 16);
    let b = y + ((fix(1.772) * cb + ONE_HALF) >> 16);
    let clamp = |v: i32| v.clamp(0, 255) as u8;
    [clamp(r), clamp(g), clamp(b)]
}

/// Reads the marker at `pos` (skipping fill bytes) and moves past it.
fn next_marker(bytes: &[u8], pos: &mut usize) -> Result<u8> {
    if bytes.get(*pos) != Some(&0xFF) {
        return Err(GiveUp);
    }
    while bytes.get(*pos) == Some(&0xFF) {
        *pos += 1;
    }
    let marker = *bytes.get(*pos).ok_or(GiveUp)?;
    *pos += 1;
    Ok(marker)
}

fn read_u16(bytes: &[u8], pos: usize) -> Result<u16> {
    let pair = bytes.get(pos..pos + 2).ok_or(GiveUp)?;
    Ok(u16::from_be_bytes([pair[0], pair[1]]))
}

/// Where the entropy-coded data starting at `pos` ends: the first marker that is neither a
/// stuffed 0xFF00 nor a restart marker.
fn end_of_entropy_data(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(offset) = bytes.get(pos..).and_then(|rest| memchr::memchr(0xFF, rest)) {
        pos += offset;
        match bytes.get(pos + 1) {
            Some(0x00 | 0xD0..=0xD7 | 0xFF) => pos += 1,
            _ => return pos,
        }
    }
    bytes.len()
}

/// MSB-first bit reader over entropy-coded data: removes byte stuffing, stops at a marker and
/// feeds zeros past it (as libjpeg does for truncated data).
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Bits not yet consumed, left-aligned; bits below `count` are zero or the stream's own.
    buffer: u64,
    count: u32,
    at_marker: bool,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8], pos: usize) -> Self {
        Self {
            bytes,
            pos,
            buffer: 0,
            count: 0,
            at_marker: false,
        }
    }

    /// Tops the buffer up to at least 57 bits; called with fewer than 32 left.
    #[inline(always)]
    fn refill(&mut self) {
        debug_assert!(self.count < 32);
        // Eight bytes at once when none of them is 0xFF (no stuffing, no marker).
        if let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) {
            let word = u64::from_be_bytes(chunk.try_into().expect("eight bytes"));
            let has_ff = (!word).wrapping_sub(0x0101_0101_0101_0101) & word & 0x8080_8080_8080_8080;
            if has_ff == 0 && !self.at_marker {
                self.buffer |= word >> self.count;
                let taken = (63 - self.count) / 8;
                self.pos += taken as usize;
                self.count += taken * 8;
                return;
            }
        }
        while self.count <= 56 {
            let byte = if self.at_marker {
                0
            } else {
                match self.bytes.get(self.pos..) {
                    Some([0xFF, 0x00, ..]) => {
                        self.pos += 2;
                        0xFF
                    }
                    Some([0xFF, ..]) | Some([]) | None => {
                        self.at_marker = true;
                        0
                    }
                    Some([byte, ..]) => {
                        self.pos += 1;
                        *byte
                    }
                }
            };
            self.buffer |= u64::from(byte) << (56 - self.count);
            self.count += 8;
        }
    }

    #[inline(always)]
    fn peek(&self, n: u32) -> u32 {
        (self.buffer >> (64 - n)) as u32
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buffer <<= n;
        self.count -= n;
    }

    fn bits(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        if self.count < n {
            self.refill();
        }
        let value = self.peek(n);
        self.consume(n);
        value
    }

    /// Decodes a block's AC coefficients, calling `coefficient(zigzag index, value)` for each
    /// one that is not zero (and inside the block): the hot loop of a reduced decode. The buffer lives in locals so it
    /// stays in registers, and a symbol whose code and value fit the lookahead takes one lookup.
    /// A run past the end of the block ends it, as libjpeg tolerates.
    #[inline(always)]
    fn for_each_ac(
        &mut self,
        table: &Huffman,
        mut coefficient: impl FnMut(usize, i32),
    ) -> Result<()> {
        let (mut buffer, mut count) = (self.buffer, self.count);
        let mut k = 1;
        while k < 64 {
            if count < 32 {
                (self.buffer, self.count) = (buffer, count);
                self.refill();
                (buffer, count) = (self.buffer, self.count);
            }
            let entry = table.fast[(buffer >> (64 - LOOKAHEAD)) as usize];
            let length = entry & 0xFF;
            let (advance, value) = if length != 0 {
                buffer <<= length;
                count -= length;
                ((entry >> 8) & 0xFF, (entry as i32) >> 16)
            } else {
                (self.buffer, self.count) = (buffer, count);
                let (advance, value) = table.decode_slow(self, entry)?;
                (buffer, count) = (self.buffer, self.count);
                (advance as u32, value)
            };
            let at = (k + advance - 1) as usize;
            if value != 0 && at < 64 {
                coefficient(at, value);
            }
            k += advance;
        }
        (self.buffer, self.count) = (buffer, count);
        Ok(())
    }

    /// Expects a restart marker where the data stops, and starts afresh after it.
    fn restart(&mut self) -> Result<()> {
        let bytes = self.bytes;
        // Bits left over before the marker are padding.
        let at = self.pos;
        match bytes.get(at..at + 2) {
            Some([0xFF, 0xD0..=0xD7]) => {
                *self = Self::new(bytes, at + 2);
                Ok(())
            }
            _ => Err(GiveUp),
        }
    }

    /// Where the scan's data ended: the marker the reader stopped at, or the end of the file.
    fn end(&self) -> usize {
        if self.at_marker {
            self.pos
        } else {
            end_of_entropy_data(self.bytes, self.pos)
        }
    }
}

/// One Huffman table with a combined lookup: for each [`LOOKAHEAD`]-bit prefix of the stream, the
/// symbol it starts with and, when that symbol's extra bits also fit, its whole effect.
struct Huffman {
    /// Packed entries. Complete (code and extra bits fit): bits 0–7 the bits consumed, 8–15 the
    /// positions advanced in the block (zero run plus one; 16 for ZRL; 64 for end-of-block),
    /// 16–31 the coefficient's value. Otherwise bits 0–7 are zero and, if the code alone fits,
    /// bits 16–23 its length and 24–31 its symbol; zero when the code is longer.
    fast: Box<[u32; 1 << LOOKAHEAD]>,
    /// Canonical decoding for codes longer than the lookahead: per length, the largest code
    /// (exclusive bound) and the index of its first symbol minus its first code.
    max_code: [i32; 17],
    offset: [i32; 17],
    symbols: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], symbols: &[u8]) -> Result<Self> {
        let mut fast = Box::new([0u32; 1 << LOOKAHEAD]);
        let mut max_code = [-1i32; 17];
        let mut offset = [0i32; 17];
        let mut code = 0u32;
        let mut index = 0usize;
        for length in 1..=16u32 {
            let n = usize::from(counts[length as usize - 1]);
            offset[length as usize] = index as i32 - code as i32;
            for &symbol in &symbols[index..index + n] {
                // More codes than the length allows: not a valid table.
                if code >= 1 << length {
                    return Err(GiveUp);
                }
                if length <= LOOKAHEAD {
                    let size = u32::from(symbol & 15);
                    let spare = LOOKAHEAD - length;
                    for rest in 0..1u32 << spare {
                        let prefix = (code << spare) | rest;
                        fast[prefix as usize] = if size <= spare {
                            let extra = rest >> (spare - size);
                            let value = extend(extra, size) as u16;
                            (length + size) | (advance(symbol) << 8) | (u32::from(value) << 16)
                        } else {
                            (length << 16) | (u32::from(symbol) << 24)
                        };
                    }
                }
                code += 1;
            }
            index += n;
            max_code[length as usize] = code as i32;
            code <<= 1;
        }
        Ok(Self {
            fast,
            max_code,
            offset,
            symbols: symbols.to_vec(),
        })
    }

    /// Decodes one symbol and its extra bits: (advance, value). For a DC table the advance is
    /// meaningless and the value is the difference.
    #[inline(always)]
    fn decode(&self, reader: &mut BitReader) -> Result<(usize, i32)> {
        if reader.count < 32 {
            reader.refill();
        }
        let entry = self.fast[reader.peek(LOOKAHEAD) as usize];
        let length = entry & 0xFF;
        if length != 0 {
            reader.consume(length);
            return Ok((((entry >> 8) & 0xFF) as usize, (entry as i32) >> 16));
        }
        self.decode_slow(reader, entry)
    }

    #[cold]
    fn decode_slow(&self, reader: &mut BitReader, entry: u32) -> Result<(usize, i32)> {
        let symbol = if entry != 0 {
            reader.consume((entry >> 16) & 0xFF);
            (entry >> 24) as u8
        } else {
            let mut code = reader.peek(LOOKAHEAD) as i32;
            reader.consume(LOOKAHEAD);
            let mut length = LOOKAHEAD as usize + 1;
            loop {
                code = (code << 1) | reader.bits(1) as i32;
                if code < self.max_code[length] {
                    break;
                }
                length += 1;
                if length > 16 {
                    return Err(GiveUp);
                }
            }
            *self
                .symbols
                .get((self.offset[length] + code) as usize)
                .ok_or(GiveUp)?
        };
        let size = u32::from(symbol & 15);
        let extra = reader.bits(size);
        Ok((advance(symbol) as usize, extend(extra, size)))
    }
}

/// How far an AC symbol moves in the block: its zero run plus one, 16 for a run of sixteen
/// zeros (ZRL), to the end for end-of-block.
fn advance(symbol: u8) -> u32 {
    match (symbol >> 4, symbol & 15) {
        (0, 0) => 64,
        (15, 0) => 16,
        (run, _) => u32::from(run) + 1,
    }
}

/// JPEG's sign extension of an `size`-bit magnitude category value.
fn extend(value: u32, size: u32) -> i32 {
    if size == 0 {
        0
    } else if value < 1 << (size - 1) {
        value as i32 - (1 << size) + 1
    } else {
        value as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mozjpeg::{ColorSpace, Compress, Decompress};
    use std::path::{Path, PathBuf};

    /// A photo-like pattern: gradients plus high-frequency detail.
    fn pattern(w: usize, h: usize) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let n = ((x * 7919 + y * 104729) % 97) as u8;
                rgb.extend_from_slice(&[
                    (x * 255 / w) as u8 ^ (n & 15),
                    (y * 255 / h) as u8,
                    ((x + y) % 256) as u8 / 2 + n,
                ]);
            }
        }
        rgb
    }

    /// A baseline JPEG (libjpeg-turbo's defaults, not mozjpeg's progressive ones) of `pattern`.
    fn jpeg(w: usize, h: usize, configure: impl FnOnce(&mut Compress)) -> Vec<u8> {
        encode_with(ColorSpace::JCS_RGB, &pattern(w, h), w, h, configure)
    }

    fn encode_with(
        space: ColorSpace,
        pixels: &[u8],
        w: usize,
        h: usize,
        configure: impl FnOnce(&mut Compress),
    ) -> Vec<u8> {
        let mut c = Compress::new(space);
        c.set_fastest_defaults();
        c.set_size(w, h);
        c.set_quality(85.0);
        configure(&mut c);
        let mut started = c.start_compress(Vec::new()).unwrap();
        started.write_scanlines(pixels).unwrap();
        started.finish().unwrap()
    }

    /// Files written by Pillow (`restart_marker_blocks`): the encoder here cannot set restart
    /// intervals.
    fn testdata(name: &str) -> Vec<u8> {
        let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/jpeg");
        std::fs::read(dir.join(name)).unwrap()
    }

    fn rgba(bytes: &[u8], scale: u8) -> Option<RgbaImage> {
        decode(bytes, scale, false).map(Bitmap::into_rgba)
    }

    #[test]
    fn rgb_output_has_the_pixels_of_rgba_output() {
        for bytes in [sampled((2, 2)), testdata("restart-interval-3.jpg")] {
            for scale in [1, 2] {
                let rgba = rgba(&bytes, scale).unwrap();
                let Some(Bitmap::Rgb(rgb)) = decode(&bytes, scale, true) else {
                    panic!("keep_rgb gives RGB");
                };
                assert_eq!(Bitmap::Rgb(rgb).into_rgba(), rgba);
            }
        }
    }

    fn libjpeg_scaled(bytes: &[u8], scale: u8) -> RgbaImage {
        let mut d = Decompress::new_mem(bytes).unwrap();
        d.scale(scale);
        let mut started = d.rgba().unwrap();
        let (w, h) = (started.width() as u32, started.height() as u32);
        let pixels = started.read_scanlines::<u8>().unwrap();
        started.finish().unwrap();
        RgbaImage::from_raw(w, h, pixels).unwrap()
    }

    fn assert_close(bytes: &[u8], scale: u8, tolerance: u8) {
        let ours = rgba(bytes, scale).expect("the fast path takes this file");
        let theirs = libjpeg_scaled(bytes, scale);
        assert_eq!(ours.dimensions(), theirs.dimensions());
        let worst = ours
            .as_raw()
            .iter()
            .zip(theirs.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(
            worst <= tolerance,
            "differs from libjpeg by up to {worst} at {scale}/8"
        );
    }

    /// The mean of each `8 / scale`-pixel square of a full-scale decode (at the edges: of what
    /// exists).
    fn block_means(bytes: &[u8], scale: u8) -> Vec<f32> {
        let full = image::load_from_memory(bytes).unwrap().to_rgb8();
        let side = 8 / u32::from(scale);
        let (w, h) = (full.width().div_ceil(side), full.height().div_ceil(side));
        let mut means = Vec::new();
        for by in 0..h {
            for bx in 0..w {
                let mut sum = [0f32; 3];
                let mut n = 0f32;
                for y in by * side..(by * side + side).min(full.height()) {
                    for x in bx * side..(bx * side + side).min(full.width()) {
                        for (s, v) in sum.iter_mut().zip(full.get_pixel(x, y).0) {
                            *s += f32::from(v);
                        }
                        n += 1.0;
                    }
                }
                means.extend(sum.map(|s| s / n));
            }
        }
        means
    }

    fn mean_error(image: &RgbaImage, truth: &[f32]) -> f32 {
        let rgb = image.as_raw().chunks(4).flat_map(|p| &p[..3]);
        let total: f32 = rgb.zip(truth).map(|(&a, b)| (f32::from(a) - b).abs()).sum();
        total / truth.len() as f32
    }

    fn sampled(sampling: (u8, u8)) -> Vec<u8> {
        jpeg(203, 157, |c| {
            c.set_chroma_sampling_pixel_sizes(sampling, sampling)
        })
    }

    #[test]
    fn matches_libjpeg_where_libjpeg_computes_block_means_too() {
        // libjpeg's 1×1 and 2×2 reduced IDCTs: luma at 1/8 and 1/4, 4:2:0 chroma at 1/8.
        for (w, h) in [(203, 157), (64, 64), (9, 17)] {
            for sampling in [(1, 1), (2, 2)] {
                let bytes = jpeg(w, h, |c| {
                    c.set_chroma_sampling_pixel_sizes(sampling, sampling)
                });
                assert_close(&bytes, 1, 2);
            }
            assert_close(
                &jpeg(w, h, |c| c.set_chroma_sampling_pixel_sizes((1, 1), (1, 1))),
                2,
                3,
            );
        }
        let luma: Vec<u8> = pattern(203, 157).chunks(3).map(|p| p[1] ^ p[0]).collect();
        let gray = encode_with(ColorSpace::JCS_GRAYSCALE, &luma, 203, 157, |_| {});
        assert_close(&gray, 1, 0);
        assert_close(&gray, 2, 1);
        let restarts = testdata("restart-interval-3.jpg");
        assert!(restarts.windows(2).any(|w| w == [0xFF, 0xD0]));
        assert_close(&restarts, 1, 2);
    }

    /// Where libjpeg upsamples DC-only chroma (4:2:2 and 4:4:0 at 1/8) or uses its 4×4 IDCT
    /// (chroma at 1/4), the outputs differ: this decoder's must be at least as close to the
    /// full-size image's block means.
    #[test]
    fn elsewhere_stays_at_least_as_close_to_the_block_means_as_libjpeg() {
        let cases = [
            (sampled((2, 1)), 1),
            (sampled((1, 2)), 1),
            (sampled((2, 2)), 2),
            (sampled((2, 1)), 2),
            (testdata("restart-interval-3.jpg"), 2),
        ];
        for (bytes, scale) in cases {
            let truth = block_means(&bytes, scale);
            let ours = rgba(&bytes, scale).expect("the fast path takes it");
            let ours = mean_error(&ours, &truth);
            let theirs = mean_error(&libjpeg_scaled(&bytes, scale), &truth);
            assert!(
                ours <= theirs + 0.05,
                "{ours:.2} vs libjpeg's {theirs:.2} at {scale}/8"
            );
        }
    }

    #[test]
    fn unusual_or_broken_files_are_left_to_libjpeg_without_panicking() {
        let cmyk = encode_with(ColorSpace::JCS_CMYK, &[128; 16 * 16 * 4], 16, 16, |_| {});
        assert!(rgba(&cmyk, 1).is_none());
        assert!(rgba(b"not a jpeg", 1).is_none());
        assert!(rgba(&jpeg(64, 48, Compress::set_progressive_mode), 1).is_none());
        assert!(rgba(&jpeg(64, 48, |_| {}), 4).is_none());
        let bytes = jpeg(64, 48, |_| {});
        for cut in 0..bytes.len() {
            for scale in [1, 2] {
                let _ = rgba(&bytes[..cut], scale);
            }
        }
    }
}
