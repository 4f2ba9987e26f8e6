//! Syntax tree to bytecode: constant folding, splitting per-row scalar work
//! from per-pixel vector work, dead-code elimination and register allocation.

use super::eval::{Op, TernOp, FIRST_FREE_SLOT, SLOT_HEIGHT, SLOT_WIDTH, SLOT_Y};
use super::parser::{Expr, Parsed, Target, Var};
use super::{ExprError, MAX_INSTRUCTIONS};

/// An instruction operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arg {
    /// A vector register (one value per pixel of the chunk).
    V(u16),
    /// A scalar slot (a constant, or a value computed once per row).
    S(u16),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum VKind {
    /// Channel 0..=3 of the chunk's pixels, as f32.
    Load(u8),
    /// The x coordinate of each pixel.
    X,
    /// `op` over the first `op.arity()` args.
    Op(Op, [Arg; 3]),
}

/// A vector instruction: `regs[dst] = kind`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VInstr {
    pub dst: u16,
    pub kind: VKind,
}

/// A per-row scalar instruction: `slots[dst] = op(slots[args])`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SInstr {
    pub op: Op,
    pub dst: u16,
    pub args: [u16; 3],
}

/// A compiled program.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Code {
    /// Initial scalar slots: width, height, y (set per run/row), constants, temporaries.
    pub scalar_init: Vec<f32>,
    /// Runs once per row.
    pub scalar_code: Vec<SInstr>,
    /// Runs once per chunk; `dst` are physical registers.
    pub vcode: Vec<VInstr>,
    pub nregs: usize,
    /// (channel, value) written back after `vcode`; channels not listed are untouched.
    pub stores: Vec<(u8, Arg)>,
}

/// A value during lowering.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Val {
    Const(f32),
    S(u16),
    /// Virtual vector register.
    V(u16),
}

struct Lower {
    scalar_init: Vec<f32>,
    scalar_code: Vec<SInstr>,
    vcode: Vec<VInstr>,
    nv: u16,
    loads: [Option<u16>; 4],
    x: Option<u16>,
    /// Current value of each channel; `None` = still the pixel's own value.
    chans: [Option<Val>; 4],
    locals: Vec<Val>,
    /// (bits, slot) of the constants already in `scalar_init`.
    consts: Vec<(u32, u16)>,
}

pub(crate) fn lower(src: &str, parsed: &Parsed) -> Result<Code, ExprError> {
    let mut l = Lower {
        scalar_init: vec![0.0; FIRST_FREE_SLOT as usize],
        scalar_code: Vec::new(),
        vcode: Vec::new(),
        nv: 0,
        loads: [None; 4],
        x: None,
        chans: [None; 4],
        locals: vec![Val::Const(0.0); parsed.locals],
        consts: Vec::new(),
    };
    for stmt in &parsed.stmts {
        let v = l.expr(&stmt.value);
        match stmt.target {
            Target::Chan(c) => l.chans[c as usize] = Some(v),
            Target::Local(i) => {
                if let Some(slot) = l.locals.get_mut(i as usize) {
                    *slot = v;
                }
            }
        }
    }
    let mut stores = Vec::new();
    for c in 0..4u8 {
        let Some(v) = l.chans[c as usize] else {
            continue;
        };
        if let (Val::V(r), Some(load)) = (v, l.loads[c as usize]) {
            if r == load {
                continue; // `r = r`
            }
        }
        let arg = l.arg(v);
        stores.push((c, arg));
    }
    let code = finish(l, stores);
    let total = code.scalar_code.len() + code.vcode.len() + code.stores.len();
    if total > MAX_INSTRUCTIONS {
        return Err(ExprError::at(
            src,
            0,
            format!(
                "program is too complex: {total} instructions (the limit is {MAX_INSTRUCTIONS})"
            ),
        ));
    }
    Ok(code)
}

impl Lower {
    fn expr(&mut self, e: &Expr) -> Val {
        match e {
            Expr::Num(v) => Val::Const(*v),
            Expr::Var(var) => match *var {
                Var::Chan(c) => match self.chans[c as usize] {
                    Some(v) => v,
                    None => Val::V(self.load(c)),
                },
                Var::Local(i) => self
                    .locals
                    .get(i as usize)
                    .copied()
                    .unwrap_or(Val::Const(0.0)),
                Var::X => Val::V(match self.x {
                    Some(r) => r,
                    None => {
                        let r = self.emit_v(VKind::X);
                        self.x = Some(r);
                        r
                    }
                }),
                Var::Y => Val::S(SLOT_Y),
                Var::Width => Val::S(SLOT_WIDTH),
                Var::Height => Val::S(SLOT_HEIGHT),
            },
            Expr::Op(op, args) => {
                let mut vals = [Val::Const(0.0); 3];
                for (slot, a) in vals.iter_mut().zip(args) {
                    *slot = self.expr(a);
                }
                self.op(*op, vals)
            }
        }
    }

    fn load(&mut self, c: u8) -> u16 {
        if let Some(r) = self.loads[c as usize] {
            return r;
        }
        let r = self.emit_v(VKind::Load(c));
        self.loads[c as usize] = Some(r);
        r
    }

    fn emit_v(&mut self, kind: VKind) -> u16 {
        let dst = self.nv;
        self.nv = self.nv.saturating_add(1);
        self.vcode.push(VInstr { dst, kind });
        dst
    }

    fn op(&mut self, op: Op, vals: [Val; 3]) -> Val {
        let used = &vals[..op.arity()];
        if let Some(k) = fold(op, vals) {
            return Val::Const(k);
        }
        // `if` with a constant condition picks a side at compile time.
        if let (Op::Tern(TernOp::Select), Val::Const(c)) = (op, vals[0]) {
            return if super::eval::tern(TernOp::Select, c, 1.0, 0.0) == 1.0 {
                vals[1]
            } else {
                vals[2]
            };
        }
        if used.iter().all(|v| !matches!(v, Val::V(_))) {
            let args = vals.map(|v| self.slot(v));
            let dst = self.new_slot(0.0);
            self.scalar_code.push(SInstr { op, dst, args });
            return Val::S(dst);
        }
        let args = vals.map(|v| self.arg(v));
        Val::V(self.emit_v(VKind::Op(op, args)))
    }

    fn new_slot(&mut self, init: f32) -> u16 {
        self.scalar_init.push(init);
        (self.scalar_init.len() - 1) as u16
    }

    /// The scalar slot for a non-vector value.
    fn slot(&mut self, v: Val) -> u16 {
        match v {
            Val::S(s) => s,
            Val::Const(k) => {
                if let Some(&(_, s)) = self.consts.iter().find(|(bits, _)| *bits == k.to_bits()) {
                    return s;
                }
                let s = self.new_slot(k);
                self.consts.push((k.to_bits(), s));
                s
            }
            Val::V(_) => 0, // Not reached: callers only pass scalars.
        }
    }

    fn arg(&mut self, v: Val) -> Arg {
        match v {
            Val::V(r) => Arg::V(r),
            other => Arg::S(self.slot(other)),
        }
    }
}

/// Folds an operation whose operands are all literals.
fn fold(op: Op, vals: [Val; 3]) -> Option<f32> {
    let mut k = [0.0f32; 3];
    for (i, v) in vals[..op.arity()].iter().enumerate() {
        match v {
            Val::Const(c) => k[i] = *c,
            _ => return None,
        }
    }
    Some(op.apply(k[0], k[1], k[2]))
}

fn args_of(kind: &VKind) -> &[Arg] {
    match kind {
        VKind::Op(op, args) => &args[..op.arity()],
        _ => &[],
    }
}

/// Dead-code elimination and register allocation.
fn finish(l: Lower, stores: Vec<(u8, Arg)>) -> Code {
    let Lower {
        scalar_init,
        scalar_code,
        vcode,
        nv,
        ..
    } = l;

    // Vector DCE, walking back from the stores.
    let mut live_v = vec![false; nv as usize];
    let mut live_s = vec![false; scalar_init.len()];
    let mark = |a: Arg, live_v: &mut [bool], live_s: &mut [bool]| match a {
        Arg::V(r) => live_v[r as usize] = true,
        Arg::S(s) => live_s[s as usize] = true,
    };
    for &(_, a) in &stores {
        mark(a, &mut live_v, &mut live_s);
    }
    let mut kept = Vec::new();
    for ins in vcode.into_iter().rev() {
        if live_v[ins.dst as usize] {
            for &a in args_of(&ins.kind) {
                mark(a, &mut live_v, &mut live_s);
            }
            kept.push(ins);
        }
    }
    kept.reverse();

    // Scalar DCE.
    let mut scalar_kept = Vec::new();
    for s in scalar_code.into_iter().rev() {
        if live_s[s.dst as usize] {
            for &a in &s.args[..s.op.arity()] {
                live_s[a as usize] = true;
            }
            scalar_kept.push(s);
        }
    }
    scalar_kept.reverse();

    // Linear-scan register allocation. A destination is allocated before the
    // instruction's operands are released, so it never aliases an operand.
    let end = kept.len();
    let mut last_use = vec![0usize; nv as usize];
    for (i, ins) in kept.iter().enumerate() {
        for &a in args_of(&ins.kind) {
            if let Arg::V(r) = a {
                last_use[r as usize] = i;
            }
        }
    }
    for &(_, a) in &stores {
        if let Arg::V(r) = a {
            last_use[r as usize] = end;
        }
    }
    let mut phys = vec![0u16; nv as usize];
    let mut free: Vec<u16> = Vec::new();
    let mut nregs = 0u16;
    let map = |a: Arg, phys: &[u16]| match a {
        Arg::V(r) => Arg::V(phys[r as usize]),
        s => s,
    };
    let mut vcode = Vec::with_capacity(kept.len());
    for (i, ins) in kept.into_iter().enumerate() {
        let virt: Vec<u16> = args_of(&ins.kind)
            .iter()
            .filter_map(|a| match a {
                Arg::V(r) => Some(*r),
                Arg::S(_) => None,
            })
            .collect();
        let kind = match ins.kind {
            VKind::Op(op, args) => VKind::Op(op, args.map(|a| map(a, &phys))),
            k => k,
        };
        let dst = free.pop().unwrap_or_else(|| {
            nregs += 1;
            nregs - 1
        });
        phys[ins.dst as usize] = dst;
        vcode.push(VInstr { dst, kind });
        // Release the registers whose last use is this instruction.
        let mut released: Vec<u16> = Vec::new();
        for r in virt {
            if last_use[r as usize] == i && !released.contains(&r) {
                released.push(r);
                free.push(phys[r as usize]);
            }
        }
    }
    let stores = stores
        .into_iter()
        .map(|(c, a)| (c, map(a, &phys)))
        .collect();
    Code {
        scalar_init,
        scalar_code: scalar_kept,
        vcode,
        nregs: nregs as usize,
        stores,
    }
}
