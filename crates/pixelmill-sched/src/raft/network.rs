//! Peer transport: raft RPCs as JSON over HTTP to each peer's raft listener (`server.rs` answers
//! them). A single voter never calls it. `delay` is added before every message a node sends, the
//! way a slower network would; the test suite runs with it to check that elections and placement
//! still hold up under realistic latency. Every request is signed (`auth.rs`) for the node it
//! goes to.

use super::auth::{raft_auth_header, Recipient, RAFT_AUTH_HEADER};
use super::{RaftSecret, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// Paths of the raft listener; `server.rs` routes the same constants.
pub(crate) const APPEND_PATH: &str = "/raft/append";
pub(crate) const VOTE_PATH: &str = "/raft/vote";
pub(crate) const SNAPSHOT_PATH: &str = "/raft/snapshot";
pub(crate) const WRITE_PATH: &str = "/raft/write";
pub(crate) const MEMBERSHIP_PATH: &str = "/raft/membership";
pub(crate) const STATUS_PATH: &str = "/raft/status";

/// How inter-node HTTP is made: one connection pool for every peer, the injected delay, and the
/// secret requests are signed with.
#[derive(Clone)]
pub(crate) struct Transport {
    client: reqwest::Client,
    delay: Duration,
    secret: RaftSecret,
}

/// Why a call to a peer got no answer, and whether the peer certainly did not act on it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// Nothing reached the peer (connection refused or reset before sending): safe to retry.
    #[error("cannot connect to {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    /// The request may have been acted on: a timeout, a dropped response, a garbled body.
    #[error("no usable answer from {url}: {source}")]
    Failed { url: String, source: reqwest::Error },
    /// The peer refused the request before acting on it (a bad signature, an oversized snapshot).
    #[error("{url} refused the request ({status}): {message}")]
    Refused {
        url: String,
        status: reqwest::StatusCode,
        message: String,
    },
}

impl Transport {
    pub(crate) fn new(delay: Duration, secret: RaftSecret) -> Result<Transport, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .build()?;
        Ok(Transport {
            client,
            delay,
            secret,
        })
    }

    /// POSTs `body` as JSON to `addr` + `path`, signed for node `to`, and decodes the JSON
    /// answer, within `timeout`.
    pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        to: u64,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let url = format!("http://{addr}{path}");
        let body = serde_json::to_vec(body).expect("raft messages serialise to JSON");
        let auth = self.sign("POST", path, Recipient::Node(to), &body);
        let request = self
            .client
            .post(&url)
            .header(RAFT_AUTH_HEADER, auth)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(request, url, timeout).await
    }

    /// GETs `addr` + `path`, signed for whichever node answers there, and decodes the JSON
    /// answer, within `timeout`.
    pub(crate) async fn get<Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let url = format!("http://{addr}{path}");
        let auth = self.sign("GET", path, Recipient::Any, &[]);
        let request = self.client.get(&url).header(RAFT_AUTH_HEADER, auth);
        self.send(request, url, timeout).await
    }

    fn sign(&self, method: &str, path: &str, to: Recipient, body: &[u8]) -> String {
        raft_auth_header(
            &self.secret,
            method,
            path,
            to,
            body,
            pixelmill_core::now_ms(),
        )
    }

    async fn send<Resp: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: String,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let response = match request.timeout(timeout).send().await {
            Ok(response) => response,
            Err(source) if source.is_connect() => {
                return Err(CallError::Unreachable { url, source })
            }
            Err(source) => return Err(CallError::Failed { url, source }),
        };
        let status = response.status();
        if status.is_client_error() || status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            let text = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
                .unwrap_or(text);
            return Err(CallError::Refused {
                url,
                status,
                message,
            });
        }
        let response = response
            .error_for_status()
            .map_err(|source| CallError::Failed {
                url: url.clone(),
                source,
            })?;
        response
            .json()
            .await
            .map_err(|source| CallError::Failed { url, source })
    }
}

impl RaftNetworkFactory<TypeConfig> for Transport {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            transport: self.clone(),
        }
    }
}

pub(crate) struct Peer {
    target: u64,
    addr: String,
    transport: Transport,
}

impl Peer {
    /// One raft RPC: transport failures become `Unreachable` (nothing sent or acted on; openraft
    /// backs off before retrying this peer) or `Network`, the peer's own refusal a `RemoteError`.
    async fn rpc<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<Resp, E> = self
            .transport
            .call(&self.addr, path, self.target, req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                CallError::Unreachable { .. } | CallError::Refused { .. } => {
                    RPCError::Unreachable(Unreachable::new(&e))
                }
                CallError::Failed { .. } => RPCError::Network(NetworkError::new(&e)),
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.rpc(APPEND_PATH, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.rpc(SNAPSHOT_PATH, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.rpc(VOTE_PATH, &rpc, &option).await
    }
}
