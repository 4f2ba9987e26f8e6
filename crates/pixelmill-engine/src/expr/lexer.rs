//! Source text to tokens.

use super::ExprError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Num(f32),
    Ident(String),
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    LParen,
    RParen,
    Comma,
    Semi,
    Newline,
    Assign,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    AndAnd,
    OrOr,
    Bang,
    Question,
    Colon,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        let p = |s: &str| format!("'{s}'");
        match self {
            Tok::Num(_) => "a number".to_string(),
            Tok::Ident(name) => format!("\"{name}\""),
            Tok::Plus => p("+"),
            Tok::Minus => p("-"),
            Tok::Star => p("*"),
            Tok::Slash => p("/"),
            Tok::Percent => p("%"),
            Tok::LParen => p("("),
            Tok::RParen => p(")"),
            Tok::Comma => p(","),
            Tok::Semi => p(";"),
            Tok::Newline => "the end of the line".to_string(),
            Tok::Assign => p("="),
            Tok::EqEq => p("=="),
            Tok::NotEq => p("!="),
            Tok::Lt => p("<"),
            Tok::Le => p("<="),
            Tok::Gt => p(">"),
            Tok::Ge => p(">="),
            Tok::AndAnd => p("&&"),
            Tok::OrOr => p("||"),
            Tok::Bang => p("!"),
            Tok::Question => p("?"),
            Tok::Colon => p(":"),
            Tok::Eof => "the end of the program".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the token's first character.
    pub offset: usize,
}

/// Splits `src` into tokens; the last one is always [`Tok::Eof`].
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ExprError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let c = bytes[i];
        let two = |next: u8| bytes.get(i + 1) == Some(&next);
        let (tok, len) = match c {
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'0'..=b'9' | b'.' => {
                let (value, len) = number(src, start)?;
                (Tok::Num(value), len)
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let len = bytes[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                (Tok::Ident(src[start..start + len].to_string()), len)
            }
            b'\n' => (Tok::Newline, 1),
            b'+' => (Tok::Plus, 1),
            b'-' => (Tok::Minus, 1),
            b'*' => (Tok::Star, 1),
            b'/' => (Tok::Slash, 1),
            b'%' => (Tok::Percent, 1),
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b',' => (Tok::Comma, 1),
            b';' => (Tok::Semi, 1),
            b'?' => (Tok::Question, 1),
            b':' => (Tok::Colon, 1),
            b'=' if two(b'=') => (Tok::EqEq, 2),
            b'=' => (Tok::Assign, 1),
            b'!' if two(b'=') => (Tok::NotEq, 2),
            b'!' => (Tok::Bang, 1),
            b'<' if two(b'=') => (Tok::Le, 2),
            b'<' => (Tok::Lt, 1),
            b'>' if two(b'=') => (Tok::Ge, 2),
            b'>' => (Tok::Gt, 1),
            b'&' if two(b'&') => (Tok::AndAnd, 2),
            b'|' if two(b'|') => (Tok::OrOr, 2),
            b'&' => {
                return Err(ExprError::at(
                    src,
                    start,
                    "unexpected '&' (did you mean '&&'?)",
                ))
            }
            b'|' => {
                return Err(ExprError::at(
                    src,
                    start,
                    "unexpected '|' (did you mean '||'?)",
                ))
            }
            _ => {
                let ch = src[start..].chars().next().unwrap_or('?');
                return Err(ExprError::at(
                    src,
                    start,
                    format!("unexpected character {ch:?}"),
                ));
            }
        };
        out.push(Token { tok, offset: start });
        i = start + len;
    }
    out.push(Token {
        tok: Tok::Eof,
        offset: src.len(),
    });
    Ok(out)
}

/// Lexes a number literal at `start`: `12`, `1.5`, `.5`, `2.`, `1e-3`.
fn number(src: &str, start: usize) -> Result<(f32, usize), ExprError> {
    let bytes = src.as_bytes();
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let int_len = digits(start);
    let mut end = start + int_len;
    let mut frac_len = 0;
    if bytes.get(end) == Some(&b'.') {
        frac_len = digits(end + 1);
        end += 1 + frac_len;
    }
    if int_len == 0 && frac_len == 0 {
        return Err(ExprError::at(src, start, "unexpected '.'"));
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
        let exp_len = digits(end + 1 + sign);
        if exp_len > 0 {
            end += 1 + sign + exp_len;
        }
    }
    let text = &src[start..end];
    match text.parse::<f64>() {
        Ok(v) => Ok((v as f32, end - start)),
        Err(_) => Err(ExprError::at(
            src,
            start,
            format!("invalid number {text:?}"),
        )),
    }
}
