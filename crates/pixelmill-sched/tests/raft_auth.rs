//! The raft listener refuses every request not signed with the region's secret, for this node,
//! lately and once, before reading it; and it takes snapshot chunks only in order and under its
//! cap. Attacks go to a live three-node group on loopback, whose state is compared before and after.

use futures::future::join_all;
use openraft::{BasicNode, SnapshotMeta, Vote};
use pixelmill_core::{now_ms, JobId, TenantId};
use pixelmill_sched::{
    cluster_status_at, raft_auth_header, ClusterStatus, JobTicket, MembershipChange, QueueStats,
    RaftGroup, RaftSecret, Recipient, SchedConfig, Scheduler, RAFT_AUTH_HEADER,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::TcpListener;

const SNAPSHOT_CAP: u64 = 64;

fn secret() -> RaftSecret {
    RaftSecret::new("the region's secret, thirty-two bytes or more").unwrap()
}

struct Group {
    _root: TempDir,
    nodes: Vec<Scheduler>,
    addrs: BTreeMap<u64, String>,
}

async fn start() -> Group {
    let root = tempfile::tempdir().unwrap();
    let mut listeners = Vec::new();
    let mut addrs = BTreeMap::new();
    for id in 1..=3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.insert(id, listener.local_addr().unwrap().to_string());
        listeners.push((id, listener));
    }
    let nodes = join_all(listeners.into_iter().map(|(id, listener)| {
        let dir = root.path().join(format!("n{id}"));
        let config = SchedConfig {
            node_id: id,
            max_snapshot_bytes: SNAPSHOT_CAP,
            ..SchedConfig::default()
        };
        let group = RaftGroup {
            listener,
            peers: addrs.clone(),
            secret: secret(),
        };
        async move { Scheduler::open_group(&dir, config, group).await.unwrap() }
    }))
    .await;
    let group = Group {
        _root: root,
        nodes,
        addrs,
    };
    for n in 0..5 {
        group.nodes[n % 3].enqueue(ticket(n)).await.unwrap();
    }
    group
}

fn ticket(n: usize) -> JobTicket {
    JobTicket {
        job: JobId::from_string(format!("job_{n}")),
        tenant: TenantId::new("t"),
        cost: 1,
        epoch: 0,
    }
}

impl Group {
    /// Every node's raft status (asked over the listener, signed) and queue, once all have
    /// applied the same log.
    async fn state(&self) -> Vec<(ClusterStatus, QueueStats)> {
        for _ in 0..200 {
            let mut state = Vec::new();
            for (node, addr) in self.nodes.iter().zip(self.addrs.values()) {
                let status = cluster_status_at(addr, &secret(), Duration::from_secs(2)).await;
                let mut queue = node.stats();
                // Ages grow by themselves; what is queued, leased and dead must not change.
                queue
                    .lanes
                    .iter_mut()
                    .for_each(|l| l.oldest_queued_age_ms = 0);
                state.push((status.unwrap(), queue));
            }
            if state
                .iter()
                .all(|(s, _)| s.applied_index == state[0].0.applied_index)
            {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the nodes did not settle on one applied index");
    }

    fn follower(&self) -> u64 {
        let status = self.nodes[0].cluster_status();
        let leader = status.leader.unwrap();
        status.voters.into_iter().find(|id| *id != leader).unwrap()
    }
}

/// What each route would do if an attacker got through: a fake leader of term 100, a vote for a
/// fake candidate, a snapshot, a queue write, dropping a voter, reading the group.
fn attacks() -> Vec<(&'static str, &'static str, Value)> {
    let vote = Vote::new_committed(100, 9);
    vec![
        (
            "POST",
            "/raft/append",
            json!({"vote": vote, "prev_log_id": null, "entries": [], "leader_commit": null}),
        ),
        (
            "POST",
            "/raft/vote",
            json!({"vote": Vote::new(100, 9), "last_log_id": null}),
        ),
        (
            "POST",
            "/raft/snapshot",
            json!({"vote": vote, "meta": SnapshotMeta::<u64, BasicNode>::default(), "offset": 0, "data": [1, 2], "done": true}),
        ),
        (
            "POST",
            "/raft/write",
            json!({"Enqueue": {"ticket": ticket(99), "now_ms": 0}}),
        ),
        (
            "POST",
            "/raft/membership",
            serde_json::to_value(MembershipChange::Remove { id: 3 }).unwrap(),
        ),
        ("GET", "/raft/status", Value::Null),
    ]
}

/// Sends a request with `auth` (if any) as its signature header; the status and JSON answer.
async fn send(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    auth: Option<String>,
) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}{path}");
    let mut request = match method {
        "GET" => http.get(url),
        _ => http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec()),
    };
    if let Some(auth) = auth {
        request = request.header(RAFT_AUTH_HEADER, auth);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn body_of(method: &str, payload: &Value) -> Vec<u8> {
    match method {
        "GET" => Vec::new(),
        _ => serde_json::to_vec(payload).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_wrongly_signed_stale_and_misaddressed_requests_are_refused_everywhere_and_change_nothing(
) {
    let group = start().await;
    let before = group.state().await;
    let other = RaftSecret::new("another region's secret, also thirty-two bytes").unwrap();
    let leader = before[0].0.leader.unwrap();
    for id in [leader, group.follower()] {
        let addr = &group.addrs[&id];
        let me = Recipient::Node(id);
        for (method, path, payload) in attacks() {
            let body = body_of(method, &payload);
            let ten_minutes_ago = now_ms() - 600_000;
            let cases = [
                ("unsigned", None, "no pixelmill-raft-auth header"),
                (
                    "wrong secret",
                    Some(raft_auth_header(&other, method, path, me, &body, now_ms())),
                    "does not match",
                ),
                (
                    "stale",
                    Some(raft_auth_header(
                        &secret(),
                        method,
                        path,
                        me,
                        &body,
                        ten_minutes_ago,
                    )),
                    "-600 s from this node's clock",
                ),
                (
                    "for another node",
                    Some(raft_auth_header(
                        &secret(),
                        method,
                        path,
                        Recipient::Node(id % 3 + 1),
                        &body,
                        now_ms(),
                    )),
                    "signed for node",
                ),
                (
                    "altered body",
                    Some(raft_auth_header(
                        &secret(),
                        method,
                        path,
                        me,
                        b"{}",
                        now_ms(),
                    )),
                    "does not match",
                ),
            ];
            for (case, auth, says) in cases {
                if case == "altered body" && method == "GET" {
                    continue;
                }
                let (status, answer) = send(addr, method, path, &body, auth).await;
                assert_eq!(status, 401, "{case} {method} {path} to node {id}: {answer}");
                let error = answer["error"].as_str().unwrap();
                assert!(error.contains(says), "{case} {path}: {error}");
            }
        }
    }
    assert_eq!(
        group.state().await,
        before,
        "a refused request changed the group"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_request_is_refused_on_every_route() {
    let group = start().await;
    let before = group.state().await;
    let follower = group.follower();
    let addr = &group.addrs[&follower];
    // Captured requests that did no harm the first time: a status read, and bodies raft cannot
    // parse (422 once past the signature check).
    for (method, path, _) in attacks() {
        let body = if method == "GET" {
            Vec::new()
        } else {
            b"{}".to_vec()
        };
        let auth = raft_auth_header(
            &secret(),
            method,
            path,
            Recipient::Node(follower),
            &body,
            now_ms(),
        );
        let (first, _) = send(addr, method, path, &body, Some(auth.clone())).await;
        assert_ne!(
            first, 401,
            "the original {method} {path} passes the signature check"
        );
        let (status, answer) = send(addr, method, path, &body, Some(auth)).await;
        assert_eq!(status, 401, "replayed {method} {path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("replay"),
            "{answer}"
        );
    }
    assert_eq!(group.state().await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_order_and_oversized_snapshot_chunks_are_refused_and_the_partial_dropped() {
    let group = start().await;
    let follower = group.follower();
    let addr = &group.addrs[&follower];
    let status = group.nodes[0].cluster_status();
    let vote = Vote::new_committed(status.term, status.leader.unwrap());
    let chunk = |offset: u64, len: usize, done: bool| {
        let meta = SnapshotMeta::<u64, BasicNode> {
            snapshot_id: "s1".to_owned(),
            ..Default::default()
        };
        serde_json::to_vec(&json!({"vote": vote, "meta": meta, "offset": offset, "data": vec![7u8; len], "done": done})).unwrap()
    };
    let post = |body: Vec<u8>| async move {
        let auth = raft_auth_header(
            &secret(),
            "POST",
            "/raft/snapshot",
            Recipient::Node(follower),
            &body,
            now_ms(),
        );
        send(addr, "POST", "/raft/snapshot", &body, Some(auth)).await
    };
    let mismatch = |answer: &Value| answer["Err"]["APIError"]["SnapshotMismatch"].clone();

    let (status, answer) = post(chunk(8, 8, false)).await;
    assert_eq!(status, 200);
    assert_eq!(mismatch(&answer)["expect"]["offset"], 0, "{answer}");
    assert_eq!(mismatch(&answer)["got"]["offset"], 8, "{answer}");

    // In order, then a gap: refused, and what came before is gone (offset 8 is no longer next).
    assert!(post(chunk(0, 8, false)).await.1["Ok"].is_object());
    assert_eq!(
        mismatch(&post(chunk(16, 8, false)).await.1)["got"]["offset"],
        16
    );
    assert_eq!(
        mismatch(&post(chunk(8, 8, false)).await.1)["expect"]["offset"],
        0
    );

    let (status, answer) = post(chunk(0, SNAPSHOT_CAP as usize + 1, false)).await;
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("more than this node's cap of 64"),
        "{answer}"
    );
    assert_eq!(
        group.nodes[follower as usize - 1].cluster_status().state,
        "follower"
    );
}
