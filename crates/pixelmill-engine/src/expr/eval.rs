//! Operations and the row-vector interpreter.

use super::compile::{Arg, Code, VKind};

/// Pixels per chunk: every vector register holds this many `f32`s, so a
/// program's working set stays in L1/L2 whatever the image width.
pub(crate) const CHUNK: usize = 512;

/// Scalar slots filled in per row before the scalar code runs.
pub(crate) const SLOT_WIDTH: u16 = 0;
pub(crate) const SLOT_HEIGHT: u16 = 1;
pub(crate) const SLOT_Y: u16 = 2;
pub(crate) const FIRST_FREE_SLOT: u16 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnOp {
    Neg,
    Not,
    Abs,
    Sqrt,
    Sin,
    Cos,
    Tan,
    Exp,
    Log,
    Floor,
    Ceil,
    Round,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
    Min,
    Max,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TernOp {
    /// `if(c, a, b)`
    Select,
    Clamp,
    Mix,
    Smoothstep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Un(UnOp),
    Bin(BinOp),
    Tern(TernOp),
}

impl Op {
    pub(crate) fn arity(self) -> usize {
        match self {
            Op::Un(_) => 1,
            Op::Bin(_) => 2,
            Op::Tern(_) => 3,
        }
    }

    /// Scalar evaluation (constant folding, per-row uniforms); unused
    /// operands are ignored.
    pub(crate) fn apply(self, a: f32, b: f32, c: f32) -> f32 {
        match self {
            Op::Un(op) => un(op, a),
            Op::Bin(op) => bin(op, a, b),
            Op::Tern(op) => tern(op, a, b, c),
        }
    }
}

#[inline(always)]
fn truthy(v: f32) -> bool {
    // False for 0, -0 and NaN.
    v.abs() > 0.0
}

#[inline(always)]
fn flag(b: bool) -> f32 {
    if b {
        1.0
    } else {
        0.0
    }
}

#[inline(always)]
pub(crate) fn un(op: UnOp, a: f32) -> f32 {
    match op {
        UnOp::Neg => -a,
        UnOp::Not => flag(!truthy(a)),
        UnOp::Abs => a.abs(),
        UnOp::Sqrt => a.sqrt(),
        UnOp::Sin => a.sin(),
        UnOp::Cos => a.cos(),
        UnOp::Tan => a.tan(),
        UnOp::Exp => a.exp(),
        UnOp::Log => a.ln(),
        UnOp::Floor => a.floor(),
        UnOp::Ceil => a.ceil(),
        UnOp::Round => a.round(),
    }
}

#[inline(always)]
pub(crate) fn bin(op: BinOp, a: f32, b: f32) -> f32 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => {
            if b == 0.0 {
                0.0
            } else {
                a / b
            }
        }
        BinOp::Rem => {
            if b == 0.0 {
                0.0
            } else {
                a % b
            }
        }
        BinOp::Pow => a.powf(b),
        BinOp::Min => a.min(b),
        BinOp::Max => a.max(b),
        BinOp::Lt => flag(a < b),
        BinOp::Le => flag(a <= b),
        BinOp::Gt => flag(a > b),
        BinOp::Ge => flag(a >= b),
        BinOp::Eq => flag(a == b),
        BinOp::Ne => flag(a != b),
        BinOp::And => flag(truthy(a) && truthy(b)),
        BinOp::Or => flag(truthy(a) || truthy(b)),
    }
}

#[inline(always)]
pub(crate) fn tern(op: TernOp, a: f32, b: f32, c: f32) -> f32 {
    match op {
        TernOp::Select => {
            if truthy(a) {
                b
            } else {
                c
            }
        }
        // Not f32::clamp: that panics when lo > hi.
        TernOp::Clamp => a.max(b).min(c),
        TernOp::Mix => a + (b - a) * c,
        // max/min rather than f32::clamp: a NaN ratio becomes 0, not NaN.
        #[allow(clippy::manual_clamp)]
        TernOp::Smoothstep => {
            let t = if a == b {
                flag(c >= a)
            } else {
                ((c - a) / (b - a)).max(0.0).min(1.0)
            };
            t * t * (3.0 - 2.0 * t)
        }
    }
}

/// An element source: a vector register or a broadcast scalar.
trait Elem: Copy {
    fn cut(self, n: usize) -> Self;
    fn at(self, i: usize) -> f32;
}

impl Elem for &[f32] {
    #[inline(always)]
    fn cut(self, n: usize) -> Self {
        &self[..n]
    }
    #[inline(always)]
    fn at(self, i: usize) -> f32 {
        self[i]
    }
}

impl Elem for f32 {
    #[inline(always)]
    fn cut(self, _: usize) -> Self {
        self
    }
    #[inline(always)]
    fn at(self, _: usize) -> f32 {
        self
    }
}

#[derive(Clone, Copy)]
enum Src<'a> {
    V(&'a [f32]),
    S(f32),
}

#[inline(always)]
fn map1(d: &mut [f32], a: &[f32], f: impl Fn(f32) -> f32) {
    let a = &a[..d.len()];
    for (o, &x) in d.iter_mut().zip(a) {
        *o = f(x);
    }
}

#[inline(always)]
fn map2<A: Elem, B: Elem>(d: &mut [f32], a: A, b: B, f: impl Fn(f32, f32) -> f32) {
    let n = d.len();
    let (a, b) = (a.cut(n), b.cut(n));
    for (i, o) in d.iter_mut().enumerate() {
        *o = f(a.at(i), b.at(i));
    }
}

#[inline(always)]
fn map3<A: Elem, B: Elem, C: Elem>(
    d: &mut [f32],
    a: A,
    b: B,
    c: C,
    f: impl Fn(f32, f32, f32) -> f32,
) {
    let n = d.len();
    let (a, b, c) = (a.cut(n), b.cut(n), c.cut(n));
    for (i, o) in d.iter_mut().enumerate() {
        *o = f(a.at(i), b.at(i), c.at(i));
    }
}

fn un_vec(op: UnOp, d: &mut [f32], a: &[f32]) {
    macro_rules! go {
        ($($v:ident),*) => {
            match op { $(UnOp::$v => map1(d, a, |x| un(UnOp::$v, x)),)* }
        };
    }
    go!(Neg, Not, Abs, Sqrt, Sin, Cos, Tan, Exp, Log, Floor, Ceil, Round);
}

fn bin_vec<A: Elem, B: Elem>(op: BinOp, d: &mut [f32], a: A, b: B) {
    macro_rules! go {
        ($($v:ident),*) => {
            match op { $(BinOp::$v => map2(d, a, b, |x, y| bin(BinOp::$v, x, y)),)* }
        };
    }
    go!(Add, Sub, Mul, Div, Rem, Pow, Min, Max, Lt, Le, Gt, Ge, Eq, Ne, And, Or);
}

fn tern_vec<A: Elem, B: Elem, C: Elem>(op: TernOp, d: &mut [f32], a: A, b: B, c: C) {
    macro_rules! go {
        ($($v:ident),*) => {
            match op { $(TernOp::$v => map3(d, a, b, c, |x, y, z| tern(TernOp::$v, x, y, z)),)* }
        };
    }
    go!(Select, Clamp, Mix, Smoothstep);
}

fn run_op(op: Op, d: &mut [f32], args: [Src; 3]) {
    use Src::{S, V};
    match op {
        Op::Un(op) => match args[0] {
            V(a) => un_vec(op, d, a),
            S(a) => d.fill(un(op, a)),
        },
        Op::Bin(op) => match (args[0], args[1]) {
            (V(a), V(b)) => bin_vec(op, d, a, b),
            (V(a), S(b)) => bin_vec(op, d, a, b),
            (S(a), V(b)) => bin_vec(op, d, a, b),
            (S(a), S(b)) => d.fill(bin(op, a, b)),
        },
        Op::Tern(op) => match (args[0], args[1], args[2]) {
            (V(a), V(b), V(c)) => tern_vec(op, d, a, b, c),
            (V(a), V(b), S(c)) => tern_vec(op, d, a, b, c),
            (V(a), S(b), V(c)) => tern_vec(op, d, a, b, c),
            (V(a), S(b), S(c)) => tern_vec(op, d, a, b, c),
            (S(a), V(b), V(c)) => tern_vec(op, d, a, b, c),
            (S(a), V(b), S(c)) => tern_vec(op, d, a, b, c),
            (S(a), S(b), V(c)) => tern_vec(op, d, a, b, c),
            (S(a), S(b), S(c)) => d.fill(tern(op, a, b, c)),
        },
    }
}

/// f32 to a channel byte: `floor(clamp(v, 0, 255) + 0.5)`, i.e. rounded half
/// up and clamped to 0..=255, with NaN mapped to 0.
///
/// Written without `as` casts from float (which saturate, and so compile to
/// scalar code): the value is rounded with the 2^23 trick, which vectorises.
#[inline(always)]
fn to_byte(v: f32) -> u32 {
    const MAGIC: f32 = 8_388_608.0; // 2^23: adding it leaves the integer part in the low mantissa bits
    let v = if v > 0.0 { v } else { 0.0 }; // also NaN -> 0
    let v = if v < 255.0 { v } else { 255.0 };
    let t = v + 0.5;
    let m = t + MAGIC; // t rounded to nearest-even, in the mantissa
    let rounded_up = m - MAGIC > t;
    (m.to_bits() & 0x3ff) - u32::from(rounded_up)
}

impl Code {
    pub(crate) fn run(&self, pixels: &mut [u8], width: u32, image_height: u32, first_row: u32) {
        let width = width as usize;
        if self.stores.is_empty() || width == 0 {
            return;
        }
        let Some(row_bytes) = width.checked_mul(4) else {
            return;
        };
        let rows = (pixels.len() / row_bytes).min(image_height.saturating_sub(first_row) as usize);
        let chunk = CHUNK.min(width);
        let mut regs: Vec<Vec<f32>> = vec![vec![0.0; chunk]; self.nregs];
        let mut scalars = self.scalar_init.clone();
        // Scratch for stored scalar values.
        let mut splat = vec![vec![0.0f32; chunk]; self.stores.len()];
        scalars[SLOT_WIDTH as usize] = width as f32;
        scalars[SLOT_HEIGHT as usize] = image_height as f32;

        for (row_index, row) in pixels.chunks_exact_mut(row_bytes).take(rows).enumerate() {
            scalars[SLOT_Y as usize] = (first_row as usize + row_index) as f32;
            for s in &self.scalar_code {
                let [a, b, c] = s.args.map(|i| scalars[i as usize]);
                scalars[s.dst as usize] = s.op.apply(a, b, c);
            }
            for (chunk_index, px) in row.chunks_mut(chunk * 4).enumerate() {
                let n = px.len() / 4;
                let x0 = chunk_index * chunk;
                for ins in &self.vcode {
                    let mut d = std::mem::take(&mut regs[ins.dst as usize]);
                    let out = &mut d[..n];
                    match &ins.kind {
                        VKind::Load(c) => load(out, px, *c as usize),
                        VKind::X => {
                            for (i, o) in out.iter_mut().enumerate() {
                                *o = (x0 + i) as f32;
                            }
                        }
                        VKind::Op(op, args) => {
                            let src = |a: Arg| match a {
                                Arg::V(r) => Src::V(&regs[r as usize][..n]),
                                Arg::S(s) => Src::S(scalars[s as usize]),
                            };
                            run_op(*op, out, args.map(src));
                        }
                    }
                    regs[ins.dst as usize] = d;
                }
                for (&(c, arg), buf) in self.stores.iter().zip(&mut splat) {
                    let v = match arg {
                        Arg::V(r) => &regs[r as usize][..n],
                        Arg::S(s) => {
                            buf[..n].fill(scalars[s as usize]);
                            &buf[..n]
                        }
                    };
                    store(px, v, c as usize);
                }
            }
        }
    }
}

/// Loads channel `c` of the chunk's pixels.
///
/// Pixels are handled as little-endian u32 words so that loads and stores are
/// plain 32-bit lane operations (shift, mask, convert) that vectorise. The
/// shift is deliberately a run-time value: with a constant one LLVM narrows the
/// store's read-modify-write into byte accesses and stops vectorising.
fn load(out: &mut [f32], px: &[u8], c: usize) {
    let shift = 8 * (c as u32 & 3);
    let n = px.len() / 4;
    let Some(out) = out.get_mut(..n) else { return };
    for (i, p) in px.chunks_exact(4).enumerate() {
        let word = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
        out[i] = ((word >> shift) & 0xff) as i32 as f32;
    }
}

/// Stores `v` (rounded and clamped, see [`to_byte`]) into channel `c`.
fn store(px: &mut [u8], v: &[f32], c: usize) {
    let shift = 8 * (c as u32 & 3);
    let keep = !(0xffu32 << shift);
    let n = px.len() / 4;
    let Some(v) = v.get(..n) else { return };
    for (i, p) in px.chunks_exact_mut(4).enumerate() {
        let word = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
        let word = (word & keep) | (to_byte(v[i]) << shift);
        p.copy_from_slice(&word.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn to_byte_matches_round_half_up_and_clamp() {
        let reference = |v: f32| {
            if v.is_nan() {
                0
            } else {
                (v + 0.5).floor().clamp(0.0, 255.0) as u32
            }
        };
        let specials = [
            -1.0,
            f32::NAN,
            -0.0,
            0.0,
            0.499_999_97,
            0.5,
            1.5,
            2.5,
            254.4,
            254.5,
            255.0,
            255.49,
            300.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN_POSITIVE,
        ];
        for v in specials {
            assert_eq!(super::to_byte(v), reference(v), "{v}");
        }
        for i in 0..400_000 {
            let v = i as f32 * 0.000_73 - 20.0;
            assert_eq!(super::to_byte(v), reference(v), "{v}");
        }
    }
}
