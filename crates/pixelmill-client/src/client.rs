use crate::error::ClientError;
use crate::service::{Service, Targets};
use crate::types::{Accepted, Image, Job, JobRequest};
use bytes::Bytes;
use pixelmill_core::BackoffConfig;
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a client behaves.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub service: Service,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<String>,
    /// The local address requests (and DNS queries) leave from: which client network this is.
    pub local: Option<IpAddr>,
    /// The longest one attempt on one node may take.
    pub attempt_timeout: Duration,
    /// The longest a call may keep trying, over every node and round.
    pub deadline: Duration,
    /// The wait between rounds (every answer tried, the name resolved again).
    pub backoff: BackoffConfig,
}

impl ClientConfig {
    pub fn new(service: Service) -> Self {
        Self {
            service,
            api_key: None,
            local: None,
            attempt_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(60),
            backoff: BackoffConfig {
                base: Duration::from_millis(250),
                max: Duration::from_secs(4),
                jitter: 0.3,
            },
        }
    }
}

/// One attempt of a call on one node, as an observer sees it.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub method: Method,
    pub path: String,
    /// The node's address; `None` when the service is a plain URL.
    pub addr: Option<SocketAddr>,
    /// The status it answered, or `None` when it could not be reached in time.
    pub status: Option<u16>,
    pub took: Duration,
}

type Observer = Arc<dyn Fn(&Attempt) + Send + Sync>;

/// A pixelmill API client that fails over: it tries each node the service name resolves to,
/// resolves again when all failed, and backs off between rounds. Only calls that are safe to
/// repeat are repeated: reads, and job submissions, which carry an idempotency key.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    targets: Targets,
    /// One HTTP client per node address, each resolving the service name to that address, so
    /// URLs keep the service's name (for TLS and `Host`) while the client picks the node.
    http: Mutex<HashMap<Option<IpAddr>, reqwest::Client>>,
    observer: Option<Observer>,
}

/// A request that can be sent again as it is.
pub(crate) struct Call<'a> {
    pub method: Method,
    pub path: &'a str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Bytes>,
}

impl<'a> Call<'a> {
    pub(crate) fn get(path: &'a str) -> Self {
        Self {
            method: Method::GET,
            path,
            headers: Vec::new(),
            body: None,
        }
    }
}

impl Client {
    pub fn new(config: ClientConfig) -> Self {
        Self::build(config, None)
    }

    /// A client that reports every attempt to `observer` (which node, what it answered).
    pub fn with_observer(
        config: ClientConfig,
        observer: impl Fn(&Attempt) + Send + Sync + 'static,
    ) -> Self {
        Self::build(config, Some(Arc::new(observer)))
    }

    fn build(config: ClientConfig, observer: Option<Observer>) -> Self {
        Self {
            inner: Arc::new(Inner {
                targets: Targets::new(config.service.clone(), config.local),
                config,
                http: Mutex::new(HashMap::new()),
                observer,
            }),
        }
    }

    pub fn service(&self) -> &Service {
        self.inner.targets.service()
    }

    /// `POST /v1/images`: uploads an image, on another node or region when one fails. Originals
    /// are stored by content, so a repeat stores nothing twice; at worst a node that stored the
    /// image but whose answer was lost leaves a second image id nobody was given.
    pub async fn upload(
        &self,
        bytes: Bytes,
        durability: Option<&str>,
    ) -> Result<Image, ClientError> {
        let mut headers = Vec::new();
        if let Some(durability) = durability {
            headers.push(("pixelmill-durability", durability.to_owned()));
        }
        let call = Call {
            method: Method::POST,
            path: "/v1/images",
            headers,
            body: Some(bytes),
        };
        json(self.send(&call).await?).await
    }

    /// `GET /v1/images/{id}`.
    pub async fn image(&self, id: &str) -> Result<Image, ClientError> {
        json(self.send(&Call::get(&format!("/v1/images/{id}"))).await?).await
    }

    /// `GET /v1/images/{id}/original`: the bytes as uploaded.
    pub async fn original(&self, id: &str) -> Result<Bytes, ClientError> {
        let path = format!("/v1/images/{id}/original");
        bytes(self.send(&Call::get(&path)).await?).await
    }

    /// `POST /v1/jobs` under `idempotency_key` (one is made when `None`), so however many
    /// nodes a submission reaches it is one job.
    pub async fn create_job(
        &self,
        request: &JobRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Accepted, ClientError> {
        let key = idempotency_key.map_or_else(new_idempotency_key, str::to_owned);
        let body = serde_json::to_vec(request).map_err(|e| ClientError::Decode(e.to_string()))?;
        let call = Call {
            method: Method::POST,
            path: "/v1/jobs",
            headers: vec![
                ("idempotency-key", key),
                ("content-type", "application/json".to_owned()),
            ],
            body: Some(body.into()),
        };
        json(self.send(&call).await?).await
    }

    /// `GET /v1/jobs/{id}`.
    pub async fn job(&self, id: &str) -> Result<Job, ClientError> {
        json(self.send(&Call::get(&format!("/v1/jobs/{id}"))).await?).await
    }

    /// Polls the job until it is `succeeded` or `failed`, at most `limit`.
    pub async fn wait(&self, id: &str, limit: Duration) -> Result<Job, ClientError> {
        let started = Instant::now();
        loop {
            let job = self.job(id).await?;
            if job.is_final() {
                return Ok(job);
            }
            if started.elapsed() >= limit {
                return Err(ClientError::WaitTimeout {
                    id: id.to_owned(),
                    waited: started.elapsed(),
                    status: job.status,
                });
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The bytes behind a download link. A link naming the service (as the nodes hand them out)
    /// is fetched through the nodes the service resolves to, so it works while any region does.
    pub async fn download(&self, link: &str) -> Result<Bytes, ClientError> {
        let base = self.service().base_url();
        let path = link.strip_prefix(&base).filter(|p| p.starts_with('/'));
        match path {
            Some(path) => bytes(self.send(&Call::get(path)).await?).await,
            None if link.starts_with('/') => bytes(self.send(&Call::get(link)).await?).await,
            None => Err(ClientError::Usage(format!(
                "{link} is not a link of {base}; give a download_url this service handed out"
            ))),
        }
    }

    /// Sends `call`, failing over between nodes and rounds until it gets a final answer or the
    /// deadline passes.
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<reqwest::Response, ClientError> {
        let config = &self.inner.config;
        let started = Instant::now();
        let (mut attempts, mut round) = (0u32, 0u32);
        let mut last: (Option<SocketAddr>, String) = (None, "not tried".to_owned());
        loop {
            let targets: Vec<Option<IpAddr>> = match self.inner.targets.next_round().await {
                Ok(Some(addrs)) => addrs.into_iter().map(Some).collect(),
                Ok(None) => vec![None],
                Err(err) if err.is_retryable() => {
                    last = (None, err.to_string());
                    Vec::new()
                }
                Err(err) => return Err(err.into()),
            };
            for target in targets {
                attempts += 1;
                let addr = target.map(|ip| SocketAddr::new(ip, self.port()));
                match self.attempt(call, target).await {
                    Outcome::Answer(response) => return Ok(response),
                    Outcome::Final(err) => return Err(err),
                    Outcome::TryElsewhere(error) => {
                        if let Some(ip) = target {
                            self.inner.targets.failed(ip).await;
                        }
                        last = (addr, error);
                    }
                }
            }
            round += 1;
            let wait = config.backoff.delay(round);
            if started.elapsed() + wait >= config.deadline {
                return Err(ClientError::Unavailable {
                    attempts,
                    waited: started.elapsed(),
                    last_addr: last.0,
                    last_error: last.1,
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    fn port(&self) -> u16 {
        match self.service() {
            Service::Geo { port, .. } => *port,
            Service::Url(_) => 0,
        }
    }

    async fn attempt(&self, call: &Call<'_>, target: Option<IpAddr>) -> Outcome {
        let config = &self.inner.config;
        let http = match self.http_for(target) {
            Ok(http) => http,
            Err(err) => return Outcome::Final(err),
        };
        let url = format!("{}{}", self.service().base_url(), call.path);
        let mut request = http
            .request(call.method.clone(), &url)
            .timeout(config.attempt_timeout);
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        if let Some(key) = &config.api_key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = &call.body {
            request = request.body(body.clone());
        }
        let started = Instant::now();
        let result = request.send().await;
        let status = result.as_ref().ok().map(|r| r.status().as_u16());
        if let Some(observer) = &self.inner.observer {
            observer(&Attempt {
                method: call.method.clone(),
                path: call.path.to_owned(),
                addr: target.map(|ip| SocketAddr::new(ip, self.port())),
                status,
                took: started.elapsed(),
            });
        }
        match result {
            Err(err) => Outcome::TryElsewhere(err.to_string()),
            Ok(response) => classify(response).await,
        }
    }

    fn http_for(&self, target: Option<IpAddr>) -> Result<reqwest::Client, ClientError> {
        let mut clients = self.inner.http.lock().unwrap();
        if let Some(client) = clients.get(&target) {
            return Ok(client.clone());
        }
        let config = &self.inner.config;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::limited(3));
        if let Some(local) = config.local {
            builder = builder.local_address(local);
        }
        if let (Some(ip), Service::Geo { name, port, .. }) = (target, &config.service) {
            builder = builder.resolve(name, SocketAddr::new(ip, *port));
        }
        let client = builder
            .build()
            .map_err(|e| ClientError::Usage(format!("cannot build an HTTP client: {e}")))?;
        clients.insert(target, client.clone());
        Ok(client)
    }
}

enum Outcome {
    Answer(reqwest::Response),
    Final(ClientError),
    /// The node failed or answered "not now": the call goes to the next one.
    TryElsewhere(String),
}

async fn classify(response: reqwest::Response) -> Outcome {
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        return Outcome::Answer(response);
    }
    // A node that cannot serve now; a 404 is final (a node that lacks a record another region
    // wrote moments ago asks the other regions itself before it answers 404).
    let retry_elsewhere = matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    );
    let error = api_error(response).await;
    if retry_elsewhere {
        Outcome::TryElsewhere(error.to_string())
    } else {
        Outcome::Final(error)
    }
}

async fn api_error(response: reqwest::Response) -> ClientError {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let field = |name: &str| body["error"][name].as_str().unwrap_or_default().to_owned();
    ClientError::Api {
        status,
        code: field("code"),
        message: field("message"),
    }
}

async fn json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, ClientError> {
    response
        .json()
        .await
        .map_err(|e| ClientError::Decode(e.to_string()))
}

async fn bytes(response: reqwest::Response) -> Result<Bytes, ClientError> {
    response
        .bytes()
        .await
        .map_err(|e| ClientError::Decode(e.to_string()))
}

fn new_idempotency_key() -> String {
    format!("pmc-{:032x}", rand::random::<u128>())
}
