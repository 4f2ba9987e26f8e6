use crate::OutputFormat;
use serde::{Deserialize, Serialize};

/// One step as the client wrote it: an op name and its raw parameters. The engine's registry turns
/// a list of these into a validated, compiled pipeline (or says which step and parameter is wrong).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineStep {
    pub op: String,
    #[serde(flatten)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    pub format: OutputFormat,
    /// Lossy quality 1–100 for jpeg/webp/avif; ignored by lossless formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// JPEG only: progressive (coarse-to-fine) scans instead of baseline; other formats ignore it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub progressive: bool,
    /// PNG only: zlib effort 0 (stored, fastest) to 9 (smallest, slowest); absent: the encoder's
    /// fast default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<u8>,
    /// What becomes of an embedded ICC profile. Left out of the JSON at its default, so the
    /// canonical form (and with it the content address) of older specs does not change.
    #[serde(default, skip_serializing_if = "IccMode::is_default")]
    pub icc: IccMode,
}

impl Default for OutputSpec {
    fn default() -> Self {
        Self {
            format: OutputFormat::Original,
            quality: None,
            progressive: false,
            compression: None,
            icc: IccMode::default(),
        }
    }
}

/// `srgb`: pixels tagged with another profile are converted to sRGB and the output is untagged.
/// `keep`: pixels stay as they are and the output (JPEG, PNG, WebP) embeds the original profile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IccMode {
    #[default]
    Srgb,
    Keep,
}

impl IccMode {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NotifySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// What a job does: everything in the client's `POST /v1/jobs` body except the image id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub pipeline: Vec<PipelineStep>,
    #[serde(default)]
    pub output: OutputSpec,
    #[serde(default)]
    pub notify: NotifySpec,
}

impl JobSpec {
    /// Canonical JSON of the pipeline and output (serde_json maps are ordered), used in the
    /// content address of the output so equal work lands under the same key.
    pub fn canonical_work(&self) -> String {
        serde_json::to_string(&(&self.pipeline, &self.output)).unwrap_or_default()
    }
}

/// Error in the compact pipeline form; `position` is a byte offset into the input.
#[derive(Debug, thiserror::Error)]
#[error("invalid ops at character {position}: {message}; write steps like 'resize:width=300,height=200|grayscale|expr:expr=\"r = 255 - r\"'")]
pub struct CompactParseError {
    pub position: usize,
    pub message: String,
}

impl PipelineStep {
    /// Parses the compact form used on command lines and render URLs:
    /// `resize:width=300,height=200,fit=cover|grayscale|blur:sigma=2`. Values that parse as numbers
    /// become JSON numbers, `true`/`false` booleans, anything else a string. A value may be quoted
    /// with `'` or `"` so it can contain `,` `|` or `=` (an `expr` program, say).
    pub fn parse_compact(input: &str) -> Result<Vec<PipelineStep>, CompactParseError> {
        let mut steps = Vec::new();
        let mut scanner = Scanner { src: input, pos: 0 };
        loop {
            scanner.skip_spaces();
            let op = scanner.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
            if op.is_empty() {
                return Err(scanner.error("expected an op name"));
            }
            let mut params = serde_json::Map::new();
            if scanner.eat(':') {
                loop {
                    scanner.skip_spaces();
                    let name = scanner.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
                    if name.is_empty() {
                        return Err(scanner.error("expected a parameter name"));
                    }
                    if !scanner.eat('=') {
                        return Err(
                            scanner.error(&format!("expected '=' after parameter {name:?}"))
                        );
                    }
                    let value = scanner.value()?;
                    params.insert(name.to_owned(), value);
                    if !scanner.eat(',') {
                        break;
                    }
                }
            }
            steps.push(PipelineStep {
                op: op.to_owned(),
                params,
            });
            scanner.skip_spaces();
            if scanner.at_end() {
                return Ok(steps);
            }
            if !scanner.eat('|') {
                return Err(scanner.error("expected '|' between steps"));
            }
        }
    }
}

struct Scanner<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn error(&self, message: &str) -> CompactParseError {
        CompactParseError {
            position: self.pos,
            message: message.to_owned(),
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        self.take_while(|c| c == ' ');
    }

    fn take_while(&mut self, pred: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let len = rest.find(|c| !pred(c)).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn value(&mut self) -> Result<serde_json::Value, CompactParseError> {
        for quote in ['\'', '"'] {
            if self.eat(quote) {
                let start = self.pos;
                let text = self.take_while(|c| c != quote);
                if !self.eat(quote) {
                    self.pos = start;
                    return Err(self.error("unterminated quoted value"));
                }
                return Ok(serde_json::Value::String(text.to_owned()));
            }
        }
        let raw = self.take_while(|c| c != ',' && c != '|').trim();
        if raw.is_empty() {
            return Err(self.error("expected a value"));
        }
        Ok(match raw {
            "true" => serde_json::Value::Bool(true),
            "false" => serde_json::Value::Bool(false),
            _ => serde_json::from_str::<serde_json::Number>(raw)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|_| serde_json::Value::String(raw.to_owned())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_output_options_are_optional_and_left_out_at_their_defaults() {
        let spec: OutputSpec = serde_json::from_value(json!({"format": "png"})).unwrap();
        assert_eq!((spec.compression, spec.icc), (None, IccMode::Srgb));
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({"format": "png"})
        );
        let spec: OutputSpec =
            serde_json::from_value(json!({"format": "png", "compression": 9, "icc": "keep"}))
                .unwrap();
        assert_eq!((spec.compression, spec.icc), (Some(9), IccMode::Keep));
        assert!(
            serde_json::from_value::<OutputSpec>(json!({"format": "png", "icc": "p3"})).is_err()
        );
    }

    #[test]
    fn compact_form_mirrors_the_json_pipeline() {
        let steps = PipelineStep::parse_compact(
            "resize:width=300,height=200,fit=cover|grayscale|blur:sigma=2.5",
        )
        .unwrap();
        let as_json = serde_json::to_value(&steps).unwrap();
        assert_eq!(
            as_json,
            json!([{"op": "resize", "width": 300, "height": 200, "fit": "cover"},
                   {"op": "grayscale"}, {"op": "blur", "sigma": 2.5}])
        );
    }

    #[test]
    fn quoted_values_may_hold_separators() {
        let steps =
            PipelineStep::parse_compact("expr:expr='r = max(r, g) | 0; g = 1'|flip").unwrap();
        assert_eq!(steps[0].params["expr"], json!("r = max(r, g) | 0; g = 1"));
        assert_eq!(steps[1].op, "flip");
    }

    #[test]
    fn errors_point_at_the_problem() {
        let err = PipelineStep::parse_compact("resize:width").unwrap_err();
        assert_eq!(err.position, 12);
        assert!(err.to_string().contains("expected '='"), "{err}");
        assert!(PipelineStep::parse_compact("").is_err());
        assert!(PipelineStep::parse_compact("blur:sigma='2").is_err());
        assert!(PipelineStep::parse_compact("flip||flop").is_err());
    }
}
