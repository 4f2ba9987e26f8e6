//! The API's JSON as the client reads and writes it (docs/API.md). Fields a client does not
//! need are left out; unknown ones are ignored, so newer servers stay readable.

use pixelmill_core::{NotifySpec, OutputSpec, PipelineStep};
use serde::{Deserialize, Serialize};

/// An uploaded image (`201` of `POST /v1/images`, `GET /v1/images/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub sha256: String,
}

/// A job submission (`POST /v1/jobs`).
#[derive(Clone, Debug, Serialize)]
pub struct JobRequest {
    pub image_id: String,
    pub pipeline: Vec<PipelineStep>,
    pub output: OutputSpec,
    #[serde(default)]
    pub notify: NotifySpec,
}

/// The answer to a submission (`202`, or `200` for a repeat under the same key).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Accepted {
    pub id: String,
    pub status: String,
    pub status_url: String,
}

/// A job (`GET /v1/jobs/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Job {
    pub id: String,
    pub image_id: String,
    pub status: String,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub download_url: Option<String>,
    #[serde(default)]
    pub output: Option<JobOutput>,
    #[serde(default)]
    pub error: Option<String>,
    /// The region that accepted the job.
    #[serde(default)]
    pub home_region: Option<String>,
    /// The region that runs it: its home, or the region that adopted it.
    #[serde(default)]
    pub region: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct JobOutput {
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

impl Job {
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed")
    }
}
