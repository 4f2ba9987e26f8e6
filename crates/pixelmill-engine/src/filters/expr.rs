use super::{FilterDef, Op};
use crate::bitmap::Bitmap;
use crate::expr::{compile, Program};
use crate::params::{Args, Kind, ParamError, ParamSpec, Presence};
use crate::EngineError;

pub(crate) const FILTER: FilterDef = FilterDef {
    op: "expr",
    description: "Runs a per-pixel expression program over r, g, b and a (0-255), e.g. \
                  \"r = 255 - r; g = 255 - g; b = 255 - b\".",
    params: &[ParamSpec {
        name: "expr",
        kind: Kind::Text { max_len: 10_000 },
        presence: Presence::Required,
        description: "The program source.",
    }],
    build,
};

#[derive(Debug)]
struct Expr(Program);

fn build(args: &Args) -> Result<Box<dyn Op>, ParamError> {
    let program = compile(args.str("expr")).map_err(|e| {
        ParamError::param(
            "expr",
            format!("parameter `expr` does not compile: {e}; fix the expression there"),
        )
    })?;
    Ok(Box::new(Expr(program)))
}

impl Op for Expr {
    fn cost_per_pixel(&self) -> u64 {
        8
    }

    fn apply(&self, image: Bitmap) -> Result<Bitmap, EngineError> {
        let mut image = image.into_rgba();
        let (w, h) = image.dimensions();
        self.0.apply_rgba8(&mut image, w, h);
        Ok(image.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testutil::{build_err, op, pattern};
    use serde_json::json;

    #[test]
    fn inverting_program_matches_invert_filter() {
        let img = pattern(13, 7);
        let by_expr = op(
            &FILTER,
            json!({"expr": "r = 255 - r; g = 255 - g; b = 255 - b"}),
        )
        .apply(img.clone())
        .unwrap();
        let by_invert = op(&super::super::invert::FILTER, json!({}))
            .apply(img)
            .unwrap();
        assert_eq!(by_expr, by_invert);
    }

    #[test]
    fn syntax_error_names_the_param() {
        let err = build_err(&FILTER, json!({"expr": "r = = 1"}));
        assert_eq!(err.param.as_deref(), Some("expr"));
        assert!(err.message.contains("line 1"), "{}", err.message);
    }
}
