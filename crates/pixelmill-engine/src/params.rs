//! The typed parameter schema every filter declares, and the one parser that validates a step's
//! raw JSON parameters against it (so no filter hand-parses JSON).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// A parameter's type and bounds. `Color` takes `#rrggbb`, or also `#rrggbbaa` when `alpha` is
/// set, and reads back as straight RGBA.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Integer { min: i64, max: i64 },
    Number { min: f64, max: f64 },
    Text { max_len: usize },
    Enum(&'static [&'static str]),
    Color { alpha: bool },
    Boolean,
}

/// Whether a parameter must be given, may be left out, or falls back to a default.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Presence {
    Required,
    Optional,
    DefaultNum(f64),
    DefaultStr(&'static str),
    DefaultBool(bool),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ParamSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub presence: Presence,
    pub description: &'static str,
}

/// A parameter as published by `GET /v1/filters`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamSchema {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub required: bool,
    pub default: Option<Value>,
    pub min: Option<Value>,
    pub max: Option<Value>,
    pub values: Option<Vec<&'static str>>,
    pub description: &'static str,
}

impl ParamSpec {
    pub(crate) fn schema(&self) -> ParamSchema {
        let (kind, min, max, values) = match self.kind {
            Kind::Integer { min, max } => ("integer", Some(min.into()), Some(max.into()), None),
            Kind::Number { min, max } => ("number", Some(min.into()), Some(max.into()), None),
            Kind::Text { max_len } => ("string", None, Some(max_len.into()), None),
            Kind::Enum(values) => ("enum", None, None, Some(values.to_vec())),
            Kind::Color { .. } => ("color", None, None, None),
            Kind::Boolean => ("boolean", None, None, None),
        };
        ParamSchema {
            name: self.name,
            kind,
            required: matches!(self.presence, Presence::Required),
            default: self.default(),
            min,
            max,
            values,
            description: self.description,
        }
    }

    fn default(&self) -> Option<Value> {
        match (self.presence, self.kind) {
            (Presence::Required | Presence::Optional, _) => None,
            // Published as 4, not 4.0, so clients see the type the parameter really takes.
            (Presence::DefaultNum(v), Kind::Integer { .. }) => Some((v as i64).into()),
            (Presence::DefaultNum(v), _) => Some(v.into()),
            (Presence::DefaultStr(v), _) => Some(v.into()),
            (Presence::DefaultBool(v), _) => Some(v.into()),
        }
    }

    fn expectation(&self) -> String {
        match self.kind {
            Kind::Integer { min, max } => format!("an integer from {min} to {max}"),
            Kind::Number { min, max } => format!("a number from {min} to {max}"),
            Kind::Text { max_len } => format!("a string of at most {max_len} characters"),
            Kind::Enum(values) => format!("one of {}", values.join(", ")),
            Kind::Color { alpha: false } => "a colour like \"#ff8800\" (#rrggbb)".to_owned(),
            Kind::Color { alpha: true } => {
                "a colour like \"#ff8800\" or \"#ff880080\" (#rrggbb or #rrggbbaa)".to_owned()
            }
            Kind::Boolean => "true or false".to_owned(),
        }
    }

    fn parse(&self, raw: &Value) -> Result<Arg, ParamError> {
        let invalid = || {
            ParamError::param(
                self.name,
                format!(
                    "parameter `{}` must be {}, got {raw}",
                    self.name,
                    self.expectation()
                ),
            )
        };
        match self.kind {
            Kind::Integer { min, max } => {
                // Accept 90.0 as well as 90: JSON clients often cannot tell them apart.
                let v = raw
                    .as_i64()
                    .or_else(|| raw.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                    .filter(|v| (min..=max).contains(v))
                    .ok_or_else(invalid)?;
                Ok(Arg::Int(v))
            }
            Kind::Number { min, max } => {
                let v = raw
                    .as_f64()
                    .filter(|v| (min..=max).contains(v))
                    .ok_or_else(invalid)?;
                Ok(Arg::Num(v))
            }
            Kind::Text { max_len } => {
                let v = raw
                    .as_str()
                    .filter(|s| s.chars().count() <= max_len)
                    .ok_or_else(invalid)?;
                Ok(Arg::Str(v.to_owned()))
            }
            Kind::Enum(values) => {
                let v = raw
                    .as_str()
                    .filter(|s| values.contains(s))
                    .ok_or_else(invalid)?;
                Ok(Arg::Str(v.to_owned()))
            }
            Kind::Color { alpha } => {
                let v = raw
                    .as_str()
                    .and_then(|s| parse_color(s, alpha))
                    .ok_or_else(invalid)?;
                Ok(Arg::Color(v))
            }
            Kind::Boolean => raw.as_bool().map(Arg::Bool).ok_or_else(invalid),
        }
    }
}

/// `#rrggbb` (opaque) or, when `alpha` is allowed, `#rrggbbaa`; hex digits in either case.
fn parse_color(text: &str, alpha: bool) -> Option<[u8; 4]> {
    let hex = text.strip_prefix('#')?;
    if !hex.is_ascii() || !(hex.len() == 6 || (alpha && hex.len() == 8)) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    let a = if hex.len() == 8 { byte(6)? } else { 255 };
    Some([byte(0)?, byte(2)?, byte(4)?, a])
}

fn hex_rgba(c: &[u8; 4]) -> String {
    c.iter().map(|b| format!("{b:02x}")).collect()
}

/// A rejected parameter (or combination, when `param` is `None`); the registry adds the step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParamError {
    pub param: Option<String>,
    pub message: String,
}

impl ParamError {
    pub(crate) fn param(name: &str, message: String) -> Self {
        Self {
            param: Some(name.to_owned()),
            message,
        }
    }

    pub(crate) fn step(message: String) -> Self {
        Self {
            param: None,
            message,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Int(i64),
    Num(f64),
    Str(String),
    Color([u8; 4]),
    Bool(bool),
}

/// Validated parameters with defaults filled in. Getters panic only if a filter asks for a name
/// its own schema does not declare with that type, which the per-filter tests exercise.
#[derive(Debug, Clone, Default)]
pub(crate) struct Args {
    values: HashMap<&'static str, Arg>,
}

impl Args {
    pub(crate) fn parse(
        op: &str,
        specs: &[ParamSpec],
        raw: &Map<String, Value>,
    ) -> Result<Self, ParamError> {
        if let Some(unknown) = raw.keys().find(|k| !specs.iter().any(|s| s.name == *k)) {
            let accepted: Vec<&str> = specs.iter().map(|s| s.name).collect();
            let hint = if accepted.is_empty() {
                format!("{op} takes no parameters; remove it")
            } else {
                format!("{op} accepts: {}", accepted.join(", "))
            };
            return Err(ParamError::param(
                unknown,
                format!("unknown parameter `{unknown}`; {hint}"),
            ));
        }
        let mut values = HashMap::new();
        for spec in specs {
            let arg = match (raw.get(spec.name), spec.presence) {
                (Some(v), _) => spec.parse(v)?,
                (None, Presence::Required) => {
                    return Err(ParamError::param(
                        spec.name,
                        format!(
                            "missing required parameter `{}`; add it as {}",
                            spec.name,
                            spec.expectation()
                        ),
                    ))
                }
                (None, Presence::Optional) => continue,
                // Defaults take the same path as given values, so an integer default reads back
                // with `int` and a colour default with `color`.
                (None, Presence::DefaultNum(v)) => spec.parse(&Value::from(v))?,
                (None, Presence::DefaultStr(v)) => spec.parse(&Value::from(v))?,
                (None, Presence::DefaultBool(v)) => spec.parse(&Value::from(v))?,
            };
            values.insert(spec.name, arg);
        }
        Ok(Self { values })
    }

    /// The parameters as one canonical JSON object: names sorted, defaults included, integers
    /// as integers, numbers as floats, colours as lowercase `#rrggbbaa`.
    pub(crate) fn canonical(&self) -> Map<String, Value> {
        self.values
            .iter()
            .map(|(name, arg)| {
                let value = match arg {
                    Arg::Int(v) => Value::from(*v),
                    Arg::Num(v) => Value::from(*v),
                    Arg::Str(v) => Value::from(v.as_str()),
                    Arg::Color(c) => Value::from(format!("#{}", hex_rgba(c))),
                    Arg::Bool(v) => Value::from(*v),
                };
                ((*name).to_owned(), value)
            })
            .collect()
    }

    pub(crate) fn opt_int(&self, name: &str) -> Option<i64> {
        match self.values.get(name)? {
            Arg::Int(v) => Some(*v),
            other => panic!("parameter `{name}` is {other:?}, not an integer"),
        }
    }

    pub(crate) fn int(&self, name: &str) -> i64 {
        self.opt_int(name)
            .unwrap_or_else(|| panic!("parameter `{name}` missing"))
    }

    pub(crate) fn num(&self, name: &str) -> f64 {
        match self.values.get(name) {
            Some(Arg::Num(v)) => *v,
            other => panic!("parameter `{name}` is {other:?}, not a number"),
        }
    }

    pub(crate) fn str(&self, name: &str) -> &str {
        match self.values.get(name) {
            Some(Arg::Str(v)) => v,
            other => panic!("parameter `{name}` is {other:?}, not a string"),
        }
    }

    pub(crate) fn opt_num(&self, name: &str) -> Option<f64> {
        match self.values.get(name)? {
            Arg::Num(v) => Some(*v),
            other => panic!("parameter `{name}` is {other:?}, not a number"),
        }
    }

    /// A `Kind::Color` parameter as straight RGBA.
    pub(crate) fn color(&self, name: &str) -> [u8; 4] {
        match self.values.get(name) {
            Some(Arg::Color(v)) => *v,
            other => panic!("parameter `{name}` is {other:?}, not a colour"),
        }
    }

    pub(crate) fn bool(&self, name: &str) -> bool {
        match self.values.get(name) {
            Some(Arg::Bool(v)) => *v,
            other => panic!("parameter `{name}` is {other:?}, not a boolean"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPECS: &[ParamSpec] = &[
        ParamSpec {
            name: "n",
            kind: Kind::Integer { min: 1, max: 10 },
            presence: Presence::Required,
            description: "",
        },
        ParamSpec {
            name: "x",
            kind: Kind::Number {
                min: -1.0,
                max: 1.0,
            },
            presence: Presence::DefaultNum(0.5),
            description: "",
        },
        ParamSpec {
            name: "mode",
            kind: Kind::Enum(&["a", "b"]),
            presence: Presence::DefaultStr("a"),
            description: "",
        },
        ParamSpec {
            name: "s",
            kind: Kind::Text { max_len: 3 },
            presence: Presence::Optional,
            description: "",
        },
    ];

    fn parse(v: Value) -> Result<Args, ParamError> {
        Args::parse("t", SPECS, v.as_object().unwrap())
    }

    #[test]
    fn fills_defaults_and_accepts_integral_floats() {
        let args = parse(json!({"n": 3.0})).unwrap();
        assert_eq!(args.int("n"), 3);
        assert_eq!(args.num("x"), 0.5);
        assert_eq!(args.str("mode"), "a");
        assert!(!args.values.contains_key("s"));
    }

    #[test]
    fn rejects_out_of_range_wrong_type_and_unknown() {
        let cases = [
            (
                json!({"n": -5}),
                "n",
                "parameter `n` must be an integer from 1 to 10, got -5",
            ),
            (
                json!({"n": 2.5}),
                "n",
                "parameter `n` must be an integer from 1 to 10, got 2.5",
            ),
            (
                json!({"n": 1, "x": "big"}),
                "x",
                "must be a number from -1 to 1, got \"big\"",
            ),
            (
                json!({"n": 1, "mode": "c"}),
                "mode",
                "must be one of a, b, got \"c\"",
            ),
            (
                json!({"n": 1, "s": "long"}),
                "s",
                "a string of at most 3 characters",
            ),
            (json!({}), "n", "missing required parameter `n`"),
            (
                json!({"n": 1, "nn": 2}),
                "nn",
                "unknown parameter `nn`; t accepts: n, x, mode, s",
            ),
        ];
        for (raw, param, message) in cases {
            let err = parse(raw.clone()).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "{raw}");
            assert!(err.message.contains(message), "{raw}: {}", err.message);
        }
    }

    #[test]
    fn schema_lists_type_range_and_default() {
        let schema = serde_json::to_value(SPECS[1].schema()).unwrap();
        assert_eq!(schema["type"], "number");
        assert_eq!(schema["required"], false);
        assert_eq!(schema["default"], 0.5);
        assert_eq!(schema["min"], -1.0);
        assert_eq!(SPECS[2].schema().values, Some(vec!["a", "b"]));
    }

    const COLOR_SPECS: &[ParamSpec] = &[
        ParamSpec {
            name: "fg",
            kind: Kind::Color { alpha: false },
            presence: Presence::DefaultStr("#FF8000"),
            description: "",
        },
        ParamSpec {
            name: "bg",
            kind: Kind::Color { alpha: true },
            presence: Presence::Optional,
            description: "",
        },
        ParamSpec {
            name: "k",
            kind: Kind::Integer { min: 2, max: 9 },
            presence: Presence::DefaultNum(4.0),
            description: "",
        },
    ];

    fn parse_colors(v: Value) -> Result<Args, ParamError> {
        Args::parse("c", COLOR_SPECS, v.as_object().unwrap())
    }

    #[test]
    fn colours_parse_to_rgba_and_defaults_take_their_kind() {
        let args = parse_colors(json!({"bg": "#0a0B0c80"})).unwrap();
        assert_eq!(args.color("fg"), [255, 128, 0, 255]);
        assert_eq!(args.color("bg"), [10, 11, 12, 128]);
        assert_eq!(args.int("k"), 4);
        let args = parse_colors(json!({"fg": "#000000", "bg": "#ffffff"})).unwrap();
        assert_eq!(args.color("fg"), [0, 0, 0, 255]);
        assert_eq!(args.color("bg"), [255, 255, 255, 255]);
    }

    #[test]
    fn bad_colours_say_what_is_accepted() {
        for (raw, param, message) in [
            (
                json!({"fg": "#ff800080"}),
                "fg",
                "(#rrggbb), got \"#ff800080\"",
            ),
            (json!({"fg": "ff8000"}), "fg", "a colour like \"#ff8800\""),
            (json!({"fg": "#ff80zz"}), "fg", "#rrggbb"),
            (json!({"fg": "#ff80"}), "fg", "#rrggbb"),
            (json!({"fg": "#ff8é0"}), "fg", "#rrggbb"),
            (json!({"fg": 255}), "fg", "#rrggbb"),
            (
                json!({"bg": "#fff"}),
                "bg",
                "(#rrggbb or #rrggbbaa), got \"#fff\"",
            ),
        ] {
            let err = parse_colors(raw.clone()).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "{raw}");
            assert!(err.message.contains(message), "{raw}: {}", err.message);
        }
    }

    #[test]
    fn colour_and_integer_defaults_are_published_in_their_own_types() {
        let fg = serde_json::to_value(COLOR_SPECS[0].schema()).unwrap();
        assert_eq!(fg["type"], "color");
        assert_eq!(fg["default"], "#FF8000");
        assert_eq!(fg["max"], Value::Null);
        let k = serde_json::to_value(COLOR_SPECS[2].schema()).unwrap();
        assert_eq!(k["default"].as_i64(), Some(4));
    }

    #[test]
    fn booleans_take_json_true_or_false_and_publish_their_default() {
        const SPECS: &[ParamSpec] = &[ParamSpec {
            name: "on",
            kind: Kind::Boolean,
            presence: Presence::DefaultBool(false),
            description: "",
        }];
        let parse = |v: Value| Args::parse("b", SPECS, v.as_object().unwrap());
        assert!(!parse(json!({})).unwrap().bool("on"));
        assert!(parse(json!({"on": true})).unwrap().bool("on"));
        let err = parse(json!({"on": "yes"})).unwrap_err();
        assert_eq!(
            err.message,
            "parameter `on` must be true or false, got \"yes\""
        );
        let schema = serde_json::to_value(SPECS[0].schema()).unwrap();
        assert_eq!(
            (&schema["type"], &schema["default"]),
            (&json!("boolean"), &json!(false))
        );
    }

    /// Defaults are parsed like given values, so a bad default would fail every request that
    /// leaves the parameter out; check every built-in filter's defaults here instead.
    #[test]
    fn every_builtin_default_satisfies_its_own_schema() {
        for def in crate::filters::BUILTIN {
            for spec in def.params {
                let default = match spec.presence {
                    Presence::DefaultNum(v) => Value::from(v),
                    Presence::DefaultStr(v) => Value::from(v),
                    Presence::DefaultBool(v) => Value::from(v),
                    Presence::Required | Presence::Optional => continue,
                };
                if let Err(e) = spec.parse(&default) {
                    panic!("{}.{}: {}", def.op, spec.name, e.message);
                }
            }
        }
    }
}
