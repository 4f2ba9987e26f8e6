//! Peer transport: raft RPCs as JSON over HTTP to each peer's raft listener (`server.rs` answers
//! them). A single voter never calls it. `delay` is added before every message a node sends, the
//! way a slower network would; the test suite runs with it to check that elections and placement
//! still hold up under realistic latency.

use super::TypeConfig;
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

/// How inter-node HTTP is made: one connection pool for every peer, plus the injected delay.
#[derive(Clone)]
pub(crate) struct Transport {
    client: reqwest::Client,
    delay: Duration,
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
}

impl Transport {
    pub(crate) fn new(delay: Duration) -> Result<Transport, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .build()?;
        Ok(Transport { client, delay })
    }

    /// POSTs `body` as JSON to `addr` + `path` and decodes the JSON answer, within `timeout`.
    pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let url = format!("http://{addr}{path}");
        self.send(self.client.post(&url).json(body), url, timeout)
            .await
    }

    /// GETs `addr` + `path` and decodes the JSON answer, within `timeout`.
    pub(crate) async fn get<Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let url = format!("http://{addr}{path}");
        self.send(self.client.get(&url), url, timeout).await
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
    /// One raft RPC: transport failures become `Unreachable` (nothing sent; openraft backs off
    /// before retrying this peer) or `Network`, the peer's own refusal a `RemoteError`.
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
            .call(&self.addr, path, req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
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
