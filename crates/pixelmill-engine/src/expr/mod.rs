//! The per-pixel expression language (the `expr` filter).
//!
//! A program is a list of assignments to the channels `r`, `g`, `b` and `a`:
//!
//! ```text
//! # invert, and darken green a little
//! r = 255 - r; g = (255 - g) * 0.9
//! b = if(x < width / 2, 255 - b, b)
//! ```
//!
//! # Grammar
//!
//! ```text
//! program   := statement? ((';' | NEWLINE) statement?)*
//! statement := ('r' | 'g' | 'b' | 'a' | local) '=' expr
//!            | 'let' NAME '=' expr
//! expr      := or ('?' expr ':' expr)?                 (right-associative)
//! or        := and ('||' and)*
//! and       := equality ('&&' equality)*
//! equality  := relation (('==' | '!=') relation)*
//! relation  := sum (('<' | '<=' | '>' | '>=') sum)*
//! sum       := product (('+' | '-') product)*
//! product   := unary (('*' | '/' | '%') unary)*
//! unary     := ('-' | '+' | '!') unary | primary
//! primary   := NUMBER | NAME | NAME '(' expr (',' expr)* ')' | '(' expr ')'
//! ```
//!
//! `#` starts a comment that runs to the end of the line. New lines inside
//! parentheses and after a binary operator do not end a statement.
//!
//! # Semantics
//!
//! * All values are `f32`. `r g b a` read the channel on a 0–255 scale; `x`
//!   and `y` are the 0-based pixel coordinates; `width` and `height` are the
//!   image size in pixels.
//! * Statements run in order; later statements see earlier assignments
//!   (`r = 0; g = r` sets `g` to 0). `let name = expr` declares a local.
//! * Comparisons, `&&`, `||` and `!` yield 1 or 0; a value is true when it is
//!   neither 0 nor NaN. `c ? a : b` and `if(c, a, b)` pick `a` or `b` (both
//!   sides are evaluated; there are no side effects).
//! * `x / 0` and `x % 0` are 0. `%` is the floating-point remainder with the
//!   sign of the dividend. Other operations follow IEEE rules (`sqrt(-1)` is
//!   NaN, `log(0)` is -inf, ...).
//! * When a channel is written back it is rounded (half away from zero) and
//!   clamped to 0..=255; NaN becomes 0, +inf 255 and -inf 0.
//! * Functions: `min(a, b, ...)`, `max(a, b, ...)` (2 or more arguments),
//!   `clamp(v, lo, hi)`, `abs`, `sqrt`, `pow(x, y)`, `sin`, `cos`, `tan`
//!   (radians), `exp`, `log` (natural), `floor`, `ceil`, `round`,
//!   `mix(a, b, t)` = `a + (b - a) * t`, `step(edge, x)` = `x >= edge ? 1 : 0`,
//!   `smoothstep(e0, e1, x)`, `if(c, a, b)`.
//!
//! # Limits
//!
//! Sources over [`MAX_SOURCE_BYTES`] bytes, programs with more than
//! [`MAX_NODES`] expression nodes or [`MAX_INSTRUCTIONS`] instructions and
//! expressions nested deeper than [`MAX_DEPTH`] are rejected. There are no
//! loops, so run time is linear in the pixel count.
//!
//! # Execution
//!
//! [`compile`] parses, resolves names, constant-folds and lowers the program
//! to a flat register bytecode once. [`Program::apply_rgba8`] then runs it a
//! row chunk (up to 512 pixels) at a time: each instruction is one simple
//! element-wise loop over `f32` vectors, so interpretation overhead is paid per
//! instruction per chunk, not per pixel. Sub-expressions that only depend on
//! `y`, `width`, `height` and literals are computed once per row. Channels that
//! are neither read nor written are never converted.

mod compile;
mod eval;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

/// Longest accepted source, in bytes.
pub const MAX_SOURCE_BYTES: usize = 4096;
/// Most expression nodes (literals, names, operators, calls) in one program.
pub const MAX_NODES: usize = 1024;
/// Most bytecode instructions in one compiled program.
pub const MAX_INSTRUCTIONS: usize = 1024;
/// Deepest nesting of sub-expressions (parentheses, operators, calls).
pub const MAX_DEPTH: usize = 128;

/// A compile error, with the position (byte offset and 1-based line and
/// column, counted in characters) of the offending token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} at line {line}, column {column}")]
pub struct ExprError {
    pub message: String,
    pub offset: usize,
    pub line: usize,
    pub column: usize,
}

impl ExprError {
    pub(crate) fn at(source: &str, offset: usize, message: impl Into<String>) -> Self {
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        ExprError {
            message: message.into(),
            offset,
            line,
            column,
        }
    }
}

/// A compiled program. Cheap to share: it is immutable, `Send` and `Sync`,
/// and every call to [`Program::apply_rgba8`] uses its own scratch space.
#[derive(Debug)]
pub struct Program {
    code: compile::Code,
}

/// Parses and compiles `source`. See the module documentation for the language.
pub fn compile(source: &str) -> Result<Program, ExprError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(ExprError::at(
            source,
            MAX_SOURCE_BYTES,
            format!(
                "program is too long: {} bytes (the limit is {MAX_SOURCE_BYTES})",
                source.len()
            ),
        ));
    }
    let tokens = lexer::lex(source)?;
    let parsed = parser::parse(source, &tokens)?;
    let code = compile::lower(source, &parsed)?;
    Ok(Program { code })
}

impl Program {
    /// Runs the program over an RGBA8 buffer (row-major, 4 bytes per pixel,
    /// `len == width * height * 4`), in place.
    ///
    /// A buffer shorter than `width * height * 4` is processed up to its last
    /// complete row; extra bytes are left alone. Never panics.
    pub fn apply_rgba8(&self, pixels: &mut [u8], width: u32, height: u32) {
        self.apply_rgba8_rows(pixels, width, height, 0);
    }

    /// Like [`Program::apply_rgba8`], for a horizontal band of a larger image:
    /// `pixels` holds complete rows starting at row `first_row` of an image of
    /// `width` × `image_height` pixels. `y` counts from the top of the whole
    /// image and `height` is `image_height`, so splitting an image into bands
    /// (e.g. one per thread) gives the same result as one call.
    #[allow(dead_code)] // For callers that parallelise by bands.
    pub fn apply_rgba8_rows(
        &self,
        pixels: &mut [u8],
        width: u32,
        image_height: u32,
        first_row: u32,
    ) {
        self.code.run(pixels, width, image_height, first_row);
    }

    /// Whether running the program can change any pixel (false for a program
    /// with no assignments, or only ones like `r = r`).
    #[allow(dead_code)] // Lets callers skip the pass entirely.
    pub fn is_noop(&self) -> bool {
        self.code.stores.is_empty()
    }
}
