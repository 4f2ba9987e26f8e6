use super::parser::{self, Expr, Target, Var};
use super::*;

/// Deterministic xorshift, so the tests need no dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn image(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..width * height * 4).map(|_| rng.next() as u8).collect()
}

fn run(src: &str, pixels: &[u8], width: u32, height: u32) -> Vec<u8> {
    let program = compile(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
    let mut out = pixels.to_vec();
    program.apply_rgba8(&mut out, width, height);
    out
}

/// Runs `src` on a single pixel.
fn pixel(src: &str, rgba: [u8; 4]) -> [u8; 4] {
    let out = run(src, &rgba, 1, 1);
    [out[0], out[1], out[2], out[3]]
}

fn err(src: &str) -> ExprError {
    match compile(src) {
        Ok(p) => panic!("{src:?} compiled: {p:?}"),
        Err(e) => e,
    }
}

#[test]
fn program_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Program>();
}

#[test]
fn invert_matches_manual_invert() {
    let (w, h) = (1031, 7); // more than one chunk per row, and a ragged last chunk
    let src = image(w, h, 42);
    let got = run("r = 255 - r; g = 255 - g; b = 255 - b", &src, w, h);
    let mut want = src.clone();
    for p in want.chunks_exact_mut(4) {
        p[0] = 255 - p[0];
        p[1] = 255 - p[1];
        p[2] = 255 - p[2];
    }
    assert_eq!(got, want);
}

#[test]
fn channel_reads_and_writes() {
    assert_eq!(pixel("r = g", [1, 2, 3, 4]), [2, 2, 3, 4]);
    assert_eq!(pixel("a = r + g + b", [1, 2, 3, 4]), [1, 2, 3, 6]);
    assert_eq!(pixel("r = r; g = g", [1, 2, 3, 4]), [1, 2, 3, 4]);
    assert_eq!(pixel("", [1, 2, 3, 4]), [1, 2, 3, 4]);
    assert!(compile("r = r").unwrap().is_noop());
    assert!(!compile("r = 0").unwrap().is_noop());
    // Untouched channels keep their bytes, whatever they hold.
    let src = image(64, 3, 7);
    let got = run("g = 10", &src, 64, 3);
    for (a, b) in got.chunks_exact(4).zip(src.chunks_exact(4)) {
        assert_eq!((a[0], a[1], a[2], a[3]), (b[0], 10, b[2], b[3]));
    }
}

#[test]
fn statements_run_in_order() {
    assert_eq!(pixel("r = 0; g = r", [9, 9, 9, 9]), [0, 0, 9, 9]);
    assert_eq!(pixel("r = g; g = b; b = r", [1, 2, 3, 4]), [2, 3, 2, 4]);
    assert_eq!(
        pixel("r = r + 1\nr = r * 2\n", [10, 0, 0, 0]),
        [22, 0, 0, 0]
    );
    assert_eq!(pixel("let t = r; r = g; g = t", [1, 2, 3, 4]), [2, 1, 3, 4]);
    assert_eq!(
        pixel("let t = 1; t = t + r; b = t;", [5, 0, 0, 0]),
        [5, 0, 6, 0]
    );
    // Comments, blank lines, stray separators.
    assert_eq!(
        pixel("# hi\n\n;;r = 7 # seven\n;", [0, 0, 0, 0]),
        [7, 0, 0, 0]
    );
    // New lines inside parentheses and after operators continue the statement.
    assert_eq!(pixel("r = max(1,\n 2) +\n 3", [0, 0, 0, 0]), [5, 0, 0, 0]);
}

#[test]
fn coordinates_and_size() {
    let (w, h) = (600, 3);
    let got = run(
        "r = x / (width - 1) * 255; g = y; b = width / 10; a = height",
        &vec![0; 600 * 3 * 4],
        w,
        h,
    );
    for yy in 0..h as usize {
        for xx in 0..w as usize {
            let p = &got[(yy * w as usize + xx) * 4..][..4];
            let want_r = (xx as f32 / 599.0 * 255.0 + 0.5) as u8;
            assert_eq!(p, [want_r, yy as u8, 60, 3], "at {xx},{yy}");
        }
    }
    assert_eq!(got[0], 0);
    assert_eq!(got[599 * 4], 255);
}

#[test]
fn bands_match_a_single_call() {
    let (w, h) = (33, 10);
    let src = image(w, h, 3);
    let program = compile("r = y * 20 + x; g = height - y; b = if(y > 4, 255 - b, b)").unwrap();
    let mut whole = src.clone();
    program.apply_rgba8(&mut whole, w, h);
    let mut banded = src.clone();
    let (top, bottom) = banded.split_at_mut(4 * w as usize * 4);
    program.apply_rgba8_rows(top, w, h, 0);
    program.apply_rgba8_rows(bottom, w, h, 4);
    assert_eq!(whole, banded);
}

#[test]
fn every_function() {
    // Evaluated both constant-folded (`k`) and per pixel on inputs r=100, g=4, b=2, a=200.
    let cases: &[(&str, &str, u8)] = &[
        ("min(7, 4, 5)", "min(r, g, b * 3)", 4),
        ("max(2, 4, 3)", "max(b, g, 3)", 4),
        ("clamp(300, 0, 100)", "clamp(a, 0, r)", 100),
        ("clamp(-3, 1, 2)", "clamp(-r, 1, b)", 1),
        ("abs(-12)", "abs(g - 16)", 12),
        ("sqrt(81)", "sqrt(r) - 1", 9),
        ("pow(2, 5)", "pow(b, 5)", 32),
        ("sin(1.5707964) * 100", "sin(b * 0.7853982) * 100", 100),
        ("cos(0) * 50", "cos(r - r) * 50", 50),
        ("tan(0.7853982) * 40", "tan(0.19634955 * g) * 40", 40),
        ("exp(2)", "exp(b)", 7),
        ("log(1000)", "log(r * 10)", 7),
        ("floor(3.7)", "floor(g * 0.95)", 3),
        ("ceil(3.2)", "ceil(g * 0.8)", 4),
        ("round(2.5) * 10", "round(b + 0.5) * 10", 30),
        ("mix(100, 200, 0.25)", "mix(r, a, 0.25)", 125),
        ("step(3, 4) * 2", "step(g, b) * 9 + step(b, g) * 2", 2),
        (
            "smoothstep(0, 10, 5) * 100",
            "smoothstep(0, r, 50) * 100",
            50,
        ),
        (
            "smoothstep(0, 10, -1) + smoothstep(0, 10, 20) * 7",
            "smoothstep(b, g, 0) + smoothstep(b, g, r) * 7",
            7,
        ),
        ("smoothstep(5, 5, 5) * 3", "smoothstep(g, g, g) * 3", 3),
        ("if(1, 10, 20)", "if(r, 10, 20)", 10),
        ("if(0, 10, 20)", "if(r - 100, 10, 20)", 20),
    ];
    for &(k, v, want) in cases {
        assert_eq!(pixel(&format!("r = {k}"), [100, 4, 2, 200])[0], want, "{k}");
        assert_eq!(pixel(&format!("r = {v}"), [100, 4, 2, 200])[0], want, "{v}");
    }
}

#[test]
fn comparisons_logic_and_conditionals() {
    let cases: &[(&str, u8)] = &[
        ("r < g", 1),
        ("r <= 10", 1),
        ("r > g", 0),
        ("g >= 20", 1),
        ("r == 10", 1),
        ("r != 10", 0),
        ("r < g && g < b", 1),
        ("r > g && g < b", 0),
        ("r > g || g < b", 1),
        ("!(r > g) * 5", 5),
        ("!r", 0),
        ("!0 + !!r", 2),
        ("r > 5 ? 100 : 200", 100),
        ("r > 50 ? 100 : r > 5 ? 150 : 200", 150),
        ("if(r > 50, 1, if(g == 20, 2, 3))", 2),
        ("1 + 2 * 3 - 4 / 2", 5),
        ("(1 + 2) * 3", 9),
        ("-r + 30", 20),
        ("- -r", 10),
        ("+r", 10),
        ("17 % 5", 2),
        ("g % 7", 6),
        ("1 < 2 == 1", 1),
        ("0 && 1 || 1", 1),
    ];
    for &(src, want) in cases {
        assert_eq!(
            pixel(&format!("b = {src}"), [10, 20, 30, 40])[2],
            want,
            "{src}"
        );
    }
}

#[test]
fn store_rounds_and_clamps() {
    let cases: &[(&str, u8)] = &[
        ("300", 255),
        ("-5", 0),
        ("1.5", 2),
        ("2.49", 2),
        ("254.5", 255),
        ("255.4", 255),
        ("-0.4", 0),
        ("sqrt(-1)", 0),
        ("sqrt(r - 20)", 0),
        ("1 / 0", 0),
        ("r / (g - g)", 0),
        ("r % 0", 0),
        ("pow(10, 100)", 255),
        ("pow(r, 100)", 255),
        ("-pow(r, 100)", 0),
        ("log(0)", 0),
        ("r * 0.5 + 0.25", 5),
        ("r / 4", 3),
    ];
    for &(src, want) in cases {
        assert_eq!(
            pixel(&format!("g = {src}"), [10, 20, 30, 40])[1],
            want,
            "{src}"
        );
    }
}

#[test]
fn error_positions() {
    let e = err("r = foo(1)");
    assert_eq!(
        e.to_string(),
        "unknown function \"foo\"; available: min, max, clamp, abs, sqrt, pow, sin, cos, tan, exp, log, \
         floor, ceil, round, mix, step, smoothstep, if at line 1, column 5"
    );
    assert_eq!(e.offset, 4);

    let e = err("r = 1\ng = -\nb = 2");
    assert_eq!(
        e.message,
        "expected an expression after '-', found the end of the line"
    );
    assert_eq!((e.line, e.column, e.offset), (2, 6, 11));

    let e = err("r = 1;\n  x = 2");
    assert_eq!(
        e.message,
        "cannot assign to \"x\": only r, g, b and a can be assigned"
    );
    assert_eq!((e.line, e.column), (2, 3));

    let e = err("r = clamp(1,\n 2)");
    assert_eq!(e.message, "clamp() takes 3 arguments, got 2");
    assert_eq!((e.line, e.column), (1, 5));

    let e = err("r = min(1)");
    assert_eq!(e.message, "min() takes 2 or more arguments, got 1");
    let e = err("r = abs(1, 2)");
    assert_eq!(e.message, "abs() takes 1 argument, got 2");

    let e = err("g = 1\nr = zz + 1");
    assert!(e.message.starts_with("unknown variable \"zz\""), "{e}");
    assert_eq!((e.line, e.column), (2, 5));

    let e = err("r = sin + 1");
    assert_eq!(e.message, "\"sin\" is a function; call it like sin(...)");

    let e = err("r = (1 + 2");
    assert_eq!(
        e.message,
        "expected ')' to close the '(' at line 1, column 5, found the end of the program"
    );
    assert_eq!((e.line, e.column), (1, 11));

    let e = err("r = 1 2");
    assert_eq!(
        e.message,
        "expected ';' or a new line after the statement, found a number"
    );
    assert_eq!(e.column, 7);

    let e = err("# héllo wörld\nr = 1 $ 2");
    assert_eq!(e.message, "unexpected character '$'");
    assert_eq!((e.line, e.column), (2, 7));

    let e = err("r == 1");
    assert_eq!(e.message, "expected '=' after \"r\", found '=='");
    assert_eq!(e.column, 3);

    let e = err("q = 1");
    assert!(e.message.starts_with("cannot assign to \"q\""), "{e}");
    let e = err("let x = 1");
    assert_eq!(e.message, "cannot declare \"x\": the name is reserved");
    assert_eq!(e.column, 5);
    let e = err("let t = t");
    assert!(e.message.starts_with("unknown variable \"t\""), "{e}");
    assert_eq!(e.column, 9);
    let e = err("r = 1 & 2");
    assert_eq!(e.message, "unexpected '&' (did you mean '&&'?)");
    let e = err("r = 1 ? 2");
    assert_eq!(
        e.message,
        "expected ':' in `?:` expression, found the end of the program"
    );
    let e = err("r = .");
    assert_eq!(e.message, "unexpected '.'");
    let e = err("5 = r");
    assert_eq!(
        e.message,
        "expected a statement such as `r = 255 - r`, found a number"
    );
    let e = err("r = ");
    assert_eq!(
        e.message,
        "expected an expression after '=', found the end of the program"
    );
    assert_eq!((e.line, e.column, e.offset), (1, 5, 4));
}

#[test]
fn size_limits() {
    let ok = format!("r = 1{}", " ".repeat(MAX_SOURCE_BYTES - 5));
    assert_eq!(ok.len(), MAX_SOURCE_BYTES);
    compile(&ok).unwrap();
    let e = err(&format!("{ok} "));
    assert_eq!(
        e.message,
        "program is too long: 4097 bytes (the limit is 4096)"
    );

    // 1 + 1 + ... : two nodes per term.
    compile(&format!("r = {}1", "1+".repeat(MAX_NODES / 2 - 1))).unwrap();
    let e = err(&format!("r = {}1", "1+".repeat(MAX_NODES / 2 + 1)));
    assert!(e.message.starts_with("program is too complex"), "{e}");
    let e = err(&format!("r = min({}1)", "r,".repeat(MAX_NODES)));
    assert!(e.message.starts_with("program is too complex"), "{e}");
    // Spread over statements, too.
    let e = err(&"r = r + 1 + 2 + 3\n".repeat(MAX_NODES / 7 + 1));
    assert!(e.message.starts_with("program is too complex"), "{e}");

    let deep = |n: usize| format!("r = {}1{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(pixel(&deep(60), [0; 4])[0], 1);
    let e = err(&deep(1000));
    assert!(
        e.message.starts_with("expression is nested too deeply"),
        "{e}"
    );
    let e = err(&format!("r = {}1", "-".repeat(1000)));
    assert!(
        e.message.starts_with("expression is nested too deeply"),
        "{e}"
    );
}

#[test]
fn odd_buffers_do_not_panic() {
    let program = compile("r = x + y; g = 255 - g").unwrap();
    program.apply_rgba8(&mut [], 0, 0);
    program.apply_rgba8(&mut [], 10, 10);
    program.apply_rgba8(&mut [1, 2, 3, 4], 0, 5);
    // Short buffer: only complete rows are processed.
    let mut short = vec![7u8; 4 * 3 + 5];
    program.apply_rgba8(&mut short, 3, 4);
    assert_eq!(&short[..12], &[0, 248, 7, 7, 1, 248, 7, 7, 2, 248, 7, 7]);
    assert_eq!(&short[12..], &[7; 5]);
    // Tall and one pixel wide.
    let mut tall = vec![0u8; 4 * 300];
    program.apply_rgba8(&mut tall, 1, 300);
    assert_eq!(tall[4 * 299], 255);
    program.apply_rgba8_rows(&mut tall, 1, 300, 10_000);
}

#[test]
fn compile_never_panics_on_garbage() {
    let mut rng = Rng(0x5eed);
    let pieces = [
        "r",
        "g",
        "b",
        "a",
        "x",
        "y",
        "width",
        "height",
        "let",
        "t",
        "=",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "&&",
        "||",
        "!",
        "?",
        ":",
        "+",
        "-",
        "*",
        "/",
        "%",
        "(",
        ")",
        ",",
        ";",
        "\n",
        " ",
        "#",
        "1",
        "0",
        "2.5",
        ".5",
        "1e9",
        "1e-40",
        "min",
        "max",
        "clamp",
        "abs",
        "sqrt",
        "pow",
        "sin",
        "log",
        "mix",
        "step",
        "smoothstep",
        "if",
        "foo",
        "é",
        "\u{0}",
        "&",
        "|",
        ".",
        "9999999999999999999999999999999999999999",
    ];
    let pixels = image(5, 3, 1);
    let mut compiled = 0;
    for round in 0..30_000 {
        let len = rng.below(40);
        let src: String = if round % 3 == 0 {
            // Raw bytes, lossily decoded.
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            (0..len).map(|_| rng.pick(&pieces)).collect()
        };
        let result = std::panic::catch_unwind(|| compile(&src));
        let Ok(result) = result else {
            panic!("compile panicked on {src:?}");
        };
        match result {
            Ok(program) => {
                compiled += 1;
                let mut out = pixels.clone();
                program.apply_rgba8(&mut out, 5, 3);
            }
            Err(e) => {
                assert!(e.offset <= src.len());
                assert!(e.line >= 1 && e.column >= 1);
            }
        }
    }
    assert!(compiled > 100, "only {compiled} garbage programs compiled");
}

// ---- Differential test: bytecode against a tree-walking reference. ----

fn reference(src: &str, pixels: &mut [u8], width: u32, height: u32) {
    let toks = super::lexer::lex(src).unwrap();
    let parsed = parser::parse(src, &toks).unwrap();
    fn eval(e: &Expr, ch: &[f32; 4], locals: &[f32], xy: [f32; 4]) -> f32 {
        match e {
            Expr::Num(v) => *v,
            Expr::Var(v) => match *v {
                Var::Chan(c) => ch[c as usize],
                Var::Local(i) => locals[i as usize],
                Var::X => xy[0],
                Var::Y => xy[1],
                Var::Width => xy[2],
                Var::Height => xy[3],
            },
            Expr::Op(op, args) => {
                let mut k = [0.0; 3];
                for (slot, a) in k.iter_mut().zip(args) {
                    *slot = eval(a, ch, locals, xy);
                }
                op.apply(k[0], k[1], k[2])
            }
        }
    }
    for y in 0..height {
        for x in 0..width {
            let p = &mut pixels[((y * width + x) * 4) as usize..][..4];
            let mut ch = [0.0; 4];
            for c in 0..4 {
                ch[c] = f32::from(p[c]);
            }
            let mut locals = vec![0.0; parsed.locals];
            let mut written = [false; 4];
            for s in &parsed.stmts {
                let v = eval(
                    &s.value,
                    &ch,
                    &locals,
                    [x as f32, y as f32, width as f32, height as f32],
                );
                match s.target {
                    Target::Chan(c) => {
                        ch[c as usize] = v;
                        written[c as usize] = true;
                    }
                    Target::Local(i) => locals[i as usize] = v,
                }
            }
            for c in 0..4 {
                if written[c] {
                    let v = ch[c];
                    p[c] = if v.is_nan() {
                        0
                    } else {
                        (v + 0.5).floor().clamp(0.0, 255.0) as u8
                    };
                }
            }
        }
    }
}

fn random_expr(rng: &mut Rng, depth: usize, locals: &[String], out: &mut String) {
    let leaf = depth == 0 || rng.below(4) == 0;
    if leaf {
        match rng.below(3) {
            0 => {
                let nums = ["0", "1", "2", "0.5", "255", "3.25", "100", "1e-3", "7"];
                out.push_str(rng.pick(&nums));
            }
            _ => {
                let mut vars: Vec<&str> = vec!["r", "g", "b", "a", "x", "y", "width", "height"];
                vars.extend(locals.iter().map(String::as_str));
                out.push_str(rng.pick(&vars));
            }
        }
        return;
    }
    match rng.below(4) {
        0 => {
            out.push_str(rng.pick(&["-", "!", "+"]));
            out.push('(');
            random_expr(rng, depth - 1, locals, out);
            out.push(')');
        }
        1 => {
            let ops = [
                "+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "&&", "||",
            ];
            out.push('(');
            random_expr(rng, depth - 1, locals, out);
            out.push_str(&format!(" {} ", rng.pick(&ops)));
            random_expr(rng, depth - 1, locals, out);
            out.push(')');
        }
        2 => {
            out.push('(');
            random_expr(rng, depth - 1, locals, out);
            out.push_str(" ? ");
            random_expr(rng, depth - 1, locals, out);
            out.push_str(" : ");
            random_expr(rng, depth - 1, locals, out);
            out.push(')');
        }
        _ => {
            let funcs: [(&str, usize); 19] = [
                ("min", 2),
                ("min", 3),
                ("max", 2),
                ("max", 4),
                ("clamp", 3),
                ("abs", 1),
                ("sqrt", 1),
                ("pow", 2),
                ("sin", 1),
                ("cos", 1),
                ("exp", 1),
                ("log", 1),
                ("floor", 1),
                ("round", 1),
                ("mix", 3),
                ("step", 2),
                ("smoothstep", 3),
                ("if", 3),
                ("ceil", 1),
            ];
            let (name, n) = rng.pick(&funcs);
            out.push_str(name);
            out.push('(');
            for i in 0..n {
                if i > 0 {
                    out.push_str(", ");
                }
                random_expr(rng, depth - 1, locals, out);
            }
            out.push(')');
        }
    }
}

#[test]
fn bytecode_matches_tree_walking_reference() {
    let mut rng = Rng(0xdecaf);
    for case in 0..400 {
        let mut src = String::new();
        let mut locals: Vec<String> = Vec::new();
        for _ in 0..1 + rng.below(5) {
            let mut value = String::new();
            let depth = 1 + rng.below(4);
            random_expr(&mut rng, depth, &locals, &mut value);
            match rng.below(6) {
                0 => {
                    let name = format!("t{}", rng.below(3));
                    src.push_str(&format!("let {name} = {value}"));
                    if !locals.contains(&name) {
                        locals.push(name);
                    }
                }
                _ => src.push_str(&format!("{} = {value}", rng.pick(&["r", "g", "b", "a"]))),
            }
            src.push_str(rng.pick(&[";", "\n", "; "]));
        }
        let (w, h) = if case % 10 == 0 { (600, 2) } else { (13, 4) };
        let input = image(w, h, case + 1);
        let got = run(&src, &input, w, h);
        let mut want = input.clone();
        reference(&src, &mut want, w, h);
        assert_eq!(got, want, "program {src:?}");
    }
}

#[test]
fn constant_and_row_work_is_hoisted() {
    let p = compile("r = (2 + 3) * 4 - r; g = y / (height - 1) * 255; b = x * (width * 0 + 1)")
        .unwrap();
    // 5 * 4 folded to 20; the y expression runs per row as scalar code.
    let code = &p.code;
    assert_eq!(code.scalar_code.len(), 5, "{code:#?}");
    // load r, sub, x, mul.
    assert_eq!(code.vcode.len(), 4, "{code:#?}");
    // Dead code is removed and unread channels are not loaded.
    let p = compile("let t = sin(x) * r; r = g; r = 1; a = b").unwrap();
    assert_eq!(p.code.vcode.len(), 1, "{:#?}", p.code);
    assert!(p.code.nregs <= 1);
}

#[test]
#[ignore = "timing; run with --release -- --ignored --nocapture"]
fn invert_speed() {
    use std::time::Instant;
    let (w, h) = (1920u32, 1080u32);
    let src = image(w, h, 9);
    let program = compile("r = 255 - r; g = 255 - g; b = 255 - b").unwrap();
    let mut buf = src.clone();
    let best = |f: &mut dyn FnMut()| {
        (0..30)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap()
    };
    let expr = best(&mut || program.apply_rgba8(std::hint::black_box(&mut buf), w, h));
    let manual = best(&mut || {
        for p in std::hint::black_box(&mut buf).chunks_exact_mut(4) {
            p[0] = 255 - p[0];
            p[1] = 255 - p[1];
            p[2] = 255 - p[2];
        }
    });
    let manual_f32 = best(&mut || {
        for p in std::hint::black_box(&mut buf).chunks_exact_mut(4) {
            for c in &mut p[..3] {
                *c = (255.0 - f32::from(*c) + 0.5) as u8;
            }
        }
    });
    println!("1920x1080 invert: expr {expr:?}, hand-written u8 loop {manual:?}, hand-written f32 loop {manual_f32:?}");
}
