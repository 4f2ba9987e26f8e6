use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

/// A thin JSON client for the API, answering (status, body) so tests assert on both.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    /// A client of the test nodes' bootstrap admin (`ADMIN_KEY`).
    pub fn new(base: impl Into<String>) -> Client {
        Client::with_key(base, crate::ADMIN_KEY)
    }

    /// A client that sends `key` as its bearer key on every request.
    pub fn with_key(base: impl Into<String>, key: &str) -> Client {
        let mut headers = reqwest::header::HeaderMap::new();
        let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
            .expect("an API key is a valid header value");
        auth.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, auth);
        Client {
            base: base.into(),
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .expect("a reqwest client"),
        }
    }

    /// Creates an API key of `tenant` through the admin API (this client must be an admin's) and
    /// answers a client that uses it.
    pub async fn tenant_client(&self, tenant: &str) -> Client {
        let response = self
            .http
            .post(self.url("/v1/admin/keys"))
            .json(&serde_json::json!({"tenant": tenant}))
            .send()
            .await
            .expect("key request");
        let (status, body) = Self::json(response).await;
        assert_eq!(status, StatusCode::CREATED, "creating a key failed: {body}");
        Client::with_key(&self.base, body["key"].as_str().expect("the new key"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn upload(&self, bytes: Vec<u8>) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/v1/images"))
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .expect("upload request");
        Self::json(response).await
    }

    /// Uploads and returns the new image id, panicking on anything but 201.
    pub async fn upload_ok(&self, bytes: Vec<u8>) -> String {
        let (status, body) = self.upload(bytes).await;
        assert_eq!(status, StatusCode::CREATED, "upload failed: {body}");
        body["id"].as_str().expect("image id").to_owned()
    }

    pub async fn create_job(
        &self,
        job: &Value,
        idempotency_key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.post(self.url("/v1/jobs")).json(job);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        Self::json(request.send().await.expect("job request")).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self.http.post(self.url(path)).json(body).send().await;
        Self::json(response.expect("POST request")).await
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        Self::json(
            self.http
                .get(self.url(path))
                .send()
                .await
                .expect("GET request"),
        )
        .await
    }

    /// The body of a GET as text (e.g. `/metrics`), panicking on anything but 200.
    pub async fn get_text(&self, path: &str) -> String {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("GET request");
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.text().await.expect("response text")
    }

    /// Polls the job until it reaches a final status; panics after `timeout`.
    pub async fn wait_job(&self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, job) = self.get_json(&format!("/v1/jobs/{id}")).await;
            if status == StatusCode::OK
                && matches!(job["status"].as_str(), Some("succeeded" | "failed"))
            {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} not finished after {timeout:?}: {status} {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Submits `job`, waits for it to succeed and downloads its output; panics on any other
    /// outcome, naming the job.
    pub async fn run_job(&self, job: &Value) -> Vec<u8> {
        let (status, accepted) = self.create_job(job, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}: {accepted}");
        let id = accepted["id"].as_str().expect("job id");
        let done = self.wait_job(id, Duration::from_secs(60)).await;
        assert_eq!(done["status"], "succeeded", "{job}: {done}");
        let url = done["download_url"].as_str().expect("download_url");
        let response = self.http.get(url).send().await.expect("download request");
        assert_eq!(response.status(), StatusCode::OK, "download of {done}");
        response.bytes().await.expect("download body").to_vec()
    }

    async fn json(response: reqwest::Response) -> (StatusCode, Value) {
        let status = response.status();
        let body = response.bytes().await.expect("response body");
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, value)
    }
}
