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
}

impl Default for OutputSpec {
    fn default() -> Self {
        Self {
            format: OutputFormat::Original,
            quality: None,
        }
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
