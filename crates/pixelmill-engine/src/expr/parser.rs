//! Tokens to a name-resolved syntax tree. All user-facing checks (syntax,
//! names, arity, size limits) happen here, so errors come in source order.

use super::eval::{BinOp, Op, TernOp, UnOp};
use super::lexer::{Tok, Token};
use super::{ExprError, MAX_DEPTH, MAX_NODES};

/// A readable variable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Var {
    /// 0 = r, 1 = g, 2 = b, 3 = a.
    Chan(u8),
    Local(u16),
    X,
    Y,
    Width,
    Height,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Num(f32),
    Var(Var),
    /// `args.len() == op.arity()`.
    Op(Op, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Target {
    Chan(u8),
    Local(u16),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stmt {
    pub target: Target,
    pub value: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parsed {
    pub stmts: Vec<Stmt>,
    pub locals: usize,
}

const FUNCTIONS: &str =
    "min, max, clamp, abs, sqrt, pow, sin, cos, tan, exp, log, floor, ceil, round, mix, step, smoothstep, if";
const VARIABLES: &str = "r, g, b, a, x, y, width, height";

enum Func {
    Variadic(BinOp),
    Fixed(Op),
    Step,
}

fn function(name: &str) -> Option<Func> {
    use Func::{Fixed, Variadic};
    Some(match name {
        "min" => Variadic(BinOp::Min),
        "max" => Variadic(BinOp::Max),
        "clamp" => Fixed(Op::Tern(TernOp::Clamp)),
        "abs" => Fixed(Op::Un(UnOp::Abs)),
        "sqrt" => Fixed(Op::Un(UnOp::Sqrt)),
        "pow" => Fixed(Op::Bin(BinOp::Pow)),
        "sin" => Fixed(Op::Un(UnOp::Sin)),
        "cos" => Fixed(Op::Un(UnOp::Cos)),
        "tan" => Fixed(Op::Un(UnOp::Tan)),
        "exp" => Fixed(Op::Un(UnOp::Exp)),
        "log" => Fixed(Op::Un(UnOp::Log)),
        "floor" => Fixed(Op::Un(UnOp::Floor)),
        "ceil" => Fixed(Op::Un(UnOp::Ceil)),
        "round" => Fixed(Op::Un(UnOp::Round)),
        "mix" => Fixed(Op::Tern(TernOp::Mix)),
        "step" => Func::Step,
        "smoothstep" => Fixed(Op::Tern(TernOp::Smoothstep)),
        "if" => Fixed(Op::Tern(TernOp::Select)),
        _ => return None,
    })
}

fn builtin_var(name: &str) -> Option<Var> {
    Some(match name {
        "r" => Var::Chan(0),
        "g" => Var::Chan(1),
        "b" => Var::Chan(2),
        "a" => Var::Chan(3),
        "x" => Var::X,
        "y" => Var::Y,
        "width" => Var::Width,
        "height" => Var::Height,
        _ => return None,
    })
}

/// Infix operators: (operator, left binding power, right binding power).
fn infix(tok: &Tok) -> Option<(Option<BinOp>, u8, u8)> {
    Some(match tok {
        Tok::Question => (None, 1, 1),
        Tok::OrOr => (Some(BinOp::Or), 2, 3),
        Tok::AndAnd => (Some(BinOp::And), 3, 4),
        Tok::EqEq => (Some(BinOp::Eq), 4, 5),
        Tok::NotEq => (Some(BinOp::Ne), 4, 5),
        Tok::Lt => (Some(BinOp::Lt), 5, 6),
        Tok::Le => (Some(BinOp::Le), 5, 6),
        Tok::Gt => (Some(BinOp::Gt), 5, 6),
        Tok::Ge => (Some(BinOp::Ge), 5, 6),
        Tok::Plus => (Some(BinOp::Add), 6, 7),
        Tok::Minus => (Some(BinOp::Sub), 6, 7),
        Tok::Star => (Some(BinOp::Mul), 7, 8),
        Tok::Slash => (Some(BinOp::Div), 7, 8),
        Tok::Percent => (Some(BinOp::Rem), 7, 8),
        _ => return None,
    })
}

const PREFIX_BP: u8 = 8;

type Result<T> = std::result::Result<T, ExprError>;

struct Parser<'a> {
    src: &'a str,
    toks: &'a [Token],
    pos: usize,
    /// Open parentheses; new lines inside them are insignificant.
    parens: usize,
    depth: usize,
    nodes: usize,
    locals: Vec<String>,
}

pub(crate) fn parse(src: &str, toks: &[Token]) -> Result<Parsed> {
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        parens: 0,
        depth: 0,
        nodes: 0,
        locals: Vec::new(),
    };
    let mut stmts = Vec::new();
    loop {
        while matches!(p.peek(), Tok::Semi | Tok::Newline) {
            p.bump();
        }
        if *p.peek() == Tok::Eof {
            break;
        }
        stmts.push(p.statement()?);
        match p.peek() {
            Tok::Semi | Tok::Newline | Tok::Eof => {}
            other => {
                let msg = format!(
                    "expected ';' or a new line after the statement, found {}",
                    other.describe()
                );
                return Err(p.error_here(msg));
            }
        }
    }
    Ok(Parsed {
        stmts,
        locals: p.locals.len(),
    })
}

impl Parser<'_> {
    fn index(&self) -> usize {
        let mut i = self.pos.min(self.toks.len().saturating_sub(1));
        if self.parens > 0 {
            while self.toks.get(i).is_some_and(|t| t.tok == Tok::Newline) {
                i += 1;
            }
        }
        i
    }

    fn token(&self) -> &Token {
        static EOF: Token = Token {
            tok: Tok::Eof,
            offset: 0,
        };
        self.toks.get(self.index()).unwrap_or(&EOF)
    }

    fn peek(&self) -> &Tok {
        &self.token().tok
    }

    fn offset(&self) -> usize {
        match self.toks.get(self.index()) {
            Some(t) => t.offset,
            None => self.src.len(),
        }
    }

    fn bump(&mut self) -> Token {
        let t = self.token().clone();
        self.pos = self.index() + 1;
        match t.tok {
            Tok::LParen => self.parens += 1,
            Tok::RParen => self.parens = self.parens.saturating_sub(1),
            _ => {}
        }
        t
    }

    fn skip_newlines(&mut self) {
        while *self.peek() == Tok::Newline {
            self.bump();
        }
    }

    fn error_at(&self, offset: usize, msg: impl Into<String>) -> ExprError {
        ExprError::at(self.src, offset, msg)
    }

    fn error_here(&self, msg: impl Into<String>) -> ExprError {
        self.error_at(self.offset(), msg)
    }

    fn node(&mut self, offset: usize, e: Expr) -> Result<Expr> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.error_at(
                offset,
                format!("program is too complex: more than {MAX_NODES} expression nodes"),
            ));
        }
        Ok(e)
    }

    fn statement(&mut self) -> Result<Stmt> {
        let first = self.bump();
        let Tok::Ident(word) = &first.tok else {
            return Err(self.error_at(
                first.offset,
                format!(
                    "expected a statement such as `r = 255 - r`, found {}",
                    first.tok.describe()
                ),
            ));
        };
        let is_let = word == "let";
        let (name, name_offset) = if is_let {
            let t = self.bump();
            match t.tok {
                Tok::Ident(n) => (n, t.offset),
                other => {
                    return Err(self.error_at(
                        t.offset,
                        format!("expected a name after 'let', found {}", other.describe()),
                    ))
                }
            }
        } else {
            (word.clone(), first.offset)
        };
        if is_let && (builtin_var(&name).is_some() || name == "let") {
            return Err(self.error_at(
                name_offset,
                format!("cannot declare \"{name}\": the name is reserved"),
            ));
        }
        if *self.peek() != Tok::Assign {
            let msg = format!(
                "expected '=' after \"{name}\", found {}",
                self.peek().describe()
            );
            return Err(self.error_here(msg));
        }
        self.bump();
        self.skip_newlines();
        let value = self.expr_after("'='")?;
        let local_index = self.locals.iter().position(|l| *l == name);
        let target = if is_let {
            let i = local_index.unwrap_or_else(|| {
                self.locals.push(name.clone());
                self.locals.len() - 1
            });
            Target::Local(i as u16)
        } else {
            match (builtin_var(&name), local_index) {
                (Some(Var::Chan(c)), _) => Target::Chan(c),
                (None, Some(i)) => Target::Local(i as u16),
                (Some(_), _) => {
                    return Err(self.error_at(
                        name_offset,
                        format!("cannot assign to \"{name}\": only r, g, b and a can be assigned"),
                    ))
                }
                (None, None) => {
                    return Err(self.error_at(
                        name_offset,
                        format!(
                            "cannot assign to \"{name}\": only r, g, b and a can be assigned \
                             (declare a local with `let {name} = ...`)"
                        ),
                    ))
                }
            }
        };
        Ok(Stmt { target, value })
    }

    /// Parses an expression that must follow the token described by `after`.
    fn expr_after(&mut self, after: &str) -> Result<Expr> {
        self.expr_bp(0, after)
    }

    fn expr_bp(&mut self, min_bp: u8, after: &str) -> Result<Expr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here(format!(
                "expression is nested too deeply (the limit is {MAX_DEPTH} levels)"
            )));
        }
        let mut lhs = self.prefix(after)?;
        while let Some((op, lbp, rbp)) = infix(self.peek()) {
            if lbp < min_bp {
                break;
            }
            let op_tok = self.bump();
            self.skip_newlines();
            let desc = op_tok.tok.describe();
            lhs = match op {
                Some(op) => {
                    let rhs = self.expr_bp(rbp, &desc)?;
                    self.node(op_tok.offset, Expr::Op(Op::Bin(op), vec![lhs, rhs]))?
                }
                None => {
                    // Ternary: `lhs ? then : else`.
                    let then = self.expr_bp(0, &desc)?;
                    self.skip_newlines();
                    if *self.peek() != Tok::Colon {
                        let msg = format!(
                            "expected ':' in `?:` expression, found {}",
                            self.peek().describe()
                        );
                        return Err(self.error_here(msg));
                    }
                    self.bump();
                    self.skip_newlines();
                    let otherwise = self.expr_bp(rbp, "':'")?;
                    self.node(
                        op_tok.offset,
                        Expr::Op(Op::Tern(TernOp::Select), vec![lhs, then, otherwise]),
                    )?
                }
            };
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn prefix(&mut self, after: &str) -> Result<Expr> {
        let t = self.bump();
        match t.tok {
            Tok::Num(v) => self.node(t.offset, Expr::Num(v)),
            Tok::Minus | Tok::Bang | Tok::Plus => {
                let desc = t.tok.describe();
                let operand = self.expr_bp(PREFIX_BP, &desc)?;
                match t.tok {
                    Tok::Plus => Ok(operand),
                    Tok::Minus => self.node(t.offset, Expr::Op(Op::Un(UnOp::Neg), vec![operand])),
                    _ => self.node(t.offset, Expr::Op(Op::Un(UnOp::Not), vec![operand])),
                }
            }
            Tok::LParen => {
                let inner = self.expr_bp(0, "'('")?;
                self.close_paren(t.offset)?;
                Ok(inner)
            }
            Tok::Ident(name) => {
                if *self.peek() == Tok::LParen {
                    self.bump();
                    return self.call(&name, t.offset);
                }
                let var = match (
                    builtin_var(&name),
                    self.locals.iter().position(|l| *l == name),
                ) {
                    (Some(v), _) => v,
                    (None, Some(i)) => Var::Local(i as u16),
                    (None, None) if function(&name).is_some() => {
                        return Err(self.error_at(
                            t.offset,
                            format!("\"{name}\" is a function; call it like {name}(...)"),
                        ))
                    }
                    (None, None) => {
                        return Err(self.error_at(
                            t.offset,
                            format!(
                                "unknown variable \"{name}\"; available: {VARIABLES}{}",
                                self.local_list()
                            ),
                        ))
                    }
                };
                self.node(t.offset, Expr::Var(var))
            }
            other => Err(self.error_at(
                t.offset,
                format!(
                    "expected an expression after {after}, found {}",
                    other.describe()
                ),
            )),
        }
    }

    fn local_list(&self) -> String {
        self.locals.iter().map(|l| format!(", {l}")).collect()
    }

    fn close_paren(&mut self, open_offset: usize) -> Result<()> {
        if *self.peek() == Tok::RParen {
            self.bump();
            return Ok(());
        }
        let line = ExprError::at(self.src, open_offset, "");
        let msg = format!(
            "expected ')' to close the '(' at line {}, column {}, found {}",
            line.line,
            line.column,
            self.peek().describe()
        );
        Err(self.error_here(msg))
    }

    /// Parses a call's arguments; the `(` has been consumed.
    fn call(&mut self, name: &str, offset: usize) -> Result<Expr> {
        let Some(func) = function(name) else {
            return Err(self.error_at(
                offset,
                format!("unknown function \"{name}\"; available: {FUNCTIONS}"),
            ));
        };
        let mut args = Vec::new();
        if *self.peek() != Tok::RParen {
            loop {
                let after = if args.is_empty() { "'('" } else { "','" };
                args.push(self.expr_bp(0, after)?);
                if *self.peek() == Tok::Comma {
                    self.bump();
                } else {
                    break;
                }
            }
        }
        self.close_paren(offset + name.len())?;
        let n = args.len();
        let arity_error = |want: &str| {
            let s = if want == "1" { "" } else { "s" };
            self.error_at(
                offset,
                format!("{name}() takes {want} argument{s}, got {n}"),
            )
        };
        match func {
            Func::Variadic(op) => {
                if n < 2 {
                    return Err(arity_error("2 or more"));
                }
                let mut it = args.into_iter();
                let mut acc = it.next().unwrap_or(Expr::Num(0.0));
                for arg in it {
                    acc = self.node(offset, Expr::Op(Op::Bin(op), vec![acc, arg]))?;
                }
                Ok(acc)
            }
            Func::Step => {
                if n != 2 {
                    return Err(arity_error("2"));
                }
                // step(edge, x) = x >= edge
                args.swap(0, 1);
                self.node(offset, Expr::Op(Op::Bin(BinOp::Ge), args))
            }
            Func::Fixed(op) => {
                if n != op.arity() {
                    return Err(arity_error(&op.arity().to_string()));
                }
                self.node(offset, Expr::Op(op, args))
            }
        }
    }
}
