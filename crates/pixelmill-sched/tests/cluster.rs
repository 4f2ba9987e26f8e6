//! Three (and four) schedulers in one process, talking raft over HTTP on loopback: election, writes
//! through any node, failover, restart, membership changes, and the same under 30 ms of delay per
//! message. The multi-process version with real `kill -9` is the e2e test `region`.

use futures::future::join_all;
use pixelmill_core::{JobId, TenantId};
use pixelmill_sched::{
    JobTicket, MembershipChange, RaftGroup, RaftSecret, SchedConfig, SchedError, Scheduler,
    WorkerId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::net::TcpListener;

struct Member {
    id: u64,
    addr: String,
    dir: PathBuf,
    sched: Option<Scheduler>,
}

struct Group {
    _root: TempDir,
    members: Vec<Member>,
    peers: BTreeMap<u64, String>,
    base: SchedConfig,
}

/// The group's shared raft secret (every member signs with it).
fn secret() -> RaftSecret {
    RaftSecret::new("a test secret of at least thirty-two bytes").unwrap()
}

fn config(id: u64, delay: Duration) -> SchedConfig {
    SchedConfig {
        node_id: id,
        fast_lane_max_cost: 10,
        message_delay: delay,
        ..SchedConfig::default()
    }
}

fn member_config(base: &SchedConfig, id: u64) -> SchedConfig {
    SchedConfig {
        node_id: id,
        ..base.clone()
    }
}

fn ticket(n: usize) -> JobTicket {
    JobTicket {
        job: JobId::from_string(format!("job_{n:05}")),
        tenant: TenantId::new(format!("t{}", n % 3)),
        cost: 1,
        epoch: 0,
    }
}

impl Group {
    /// Starts `n` voters at once (each `open_group` waits until some node leads).
    async fn start(n: u64, delay: Duration) -> Group {
        Group::start_with(n, config(0, delay)).await
    }

    /// `start` with every node configured as `base` (its `node_id` aside).
    async fn start_with(n: u64, base: SchedConfig) -> Group {
        let root = tempfile::tempdir().unwrap();
        let mut listeners = Vec::new();
        let mut peers = BTreeMap::new();
        for id in 1..=n {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            peers.insert(id, listener.local_addr().unwrap().to_string());
            listeners.push((id, listener));
        }
        let opened = join_all(listeners.into_iter().map(|(id, listener)| {
            let dir = root.path().join(format!("n{id}"));
            let (peers, config) = (peers.clone(), member_config(&base, id));
            async move {
                let sched = Scheduler::open_group(
                    &dir,
                    config,
                    RaftGroup {
                        listener,
                        peers,
                        secret: secret(),
                    },
                )
                .await
                .unwrap();
                (id, dir, sched)
            }
        }))
        .await;
        let members = opened
            .into_iter()
            .map(|(id, dir, sched)| Member {
                id,
                addr: peers[&id].clone(),
                dir,
                sched: Some(sched),
            })
            .collect();
        Group {
            _root: root,
            members,
            peers,
            base,
        }
    }

    fn node(&self, id: u64) -> &Scheduler {
        self.members[id as usize - 1].sched.as_ref().unwrap()
    }

    fn running(&self) -> impl Iterator<Item = &Scheduler> {
        self.members.iter().filter_map(|m| m.sched.as_ref())
    }

    /// The leader all running nodes agree on, waiting for an election to settle.
    async fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen: BTreeSet<Option<u64>> =
                self.running().map(|s| s.cluster_status().leader).collect();
            if let [Some(id)] = seen.iter().copied().collect::<Vec<_>>()[..] {
                if self.running().any(|s| s.cluster_status().node_id == id) {
                    return id;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(&mut self, id: u64) {
        let sched = self.members[id as usize - 1].sched.take().unwrap();
        sched.shutdown().await.unwrap();
    }

    async fn restart(&mut self, id: u64) {
        let member = &self.members[id as usize - 1];
        let listener = TcpListener::bind(&member.addr).await.unwrap();
        let group = RaftGroup {
            listener,
            peers: self.peers.clone(),
            secret: secret(),
        };
        let sched = Scheduler::open_group(&member.dir, member_config(&self.base, id), group)
            .await
            .unwrap();
        self.members[id as usize - 1].sched = Some(sched);
    }

    /// Waits until every running node has applied what the leader applied.
    async fn converge(&self) {
        let leader = self.leader().await;
        let target = self.node(leader).cluster_status().applied_index;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self
            .running()
            .any(|s| s.cluster_status().applied_index < target)
        {
            assert!(Instant::now() < deadline, "followers did not catch up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Waits until `node` has applied `count` enqueues: a follower applies after the leader commits.
async fn until_enqueued(node: &Scheduler, count: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.stats().total_enqueued < count {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn follower_of(group: &Group, leader: u64) -> u64 {
    group
        .members
        .iter()
        .find(|m| m.id != leader && m.sched.is_some())
        .unwrap()
        .id
}

/// Writes through followers and the leader alike; leases and completions cross nodes; every node's
/// copy of the queue converges; fencing holds across nodes.
async fn any_node_can_write(delay: Duration) {
    let group = Group::start(3, delay).await;
    let leader = group.leader().await;
    let follower = follower_of(&group, leader);
    for n in 0..30 {
        let via = group.node(1 + (n as u64 % 3));
        via.enqueue(ticket(n)).await.unwrap();
    }
    // A follower reads its own applied copy to decide whether a lease could get anything.
    group.converge().await;
    let leases = group
        .node(follower)
        .lease(&WorkerId(format!("n{follower}/w0/1")), 10, 60_000)
        .await
        .unwrap();
    assert_eq!(leases.len(), 10);
    // A lease's fencing token is its log index: the same on every node.
    let first = &leases[0];
    assert!(!group
        .node(leader)
        .complete(&first.job, first.fencing + 1)
        .await
        .unwrap());
    assert!(group
        .node(leader)
        .complete(&first.job, first.fencing)
        .await
        .unwrap());
    for lease in &leases[1..] {
        assert!(group
            .node(follower)
            .complete(&lease.job, lease.fencing)
            .await
            .unwrap());
    }
    group.converge().await;
    for s in group.running() {
        let stats = s.stats();
        assert_eq!(stats.total_enqueued, 30);
        assert_eq!(stats.lanes[0].queued, 20);
        assert_eq!(stats.lanes[0].leased, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_of_three_can_write_and_all_agree() {
    any_node_can_write(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_of_three_can_write_with_30ms_per_message() {
    any_node_can_write(Duration::from_millis(30)).await;
}

/// The leader stops with leases out and writes in flight: a new leader is elected, writes through
/// the survivors wait for it, nothing committed is lost, and the old leader rejoins as a follower.
async fn survives_losing_its_leader(delay: Duration) {
    let mut group = Group::start(3, delay).await;
    let old = group.leader().await;
    for n in 0..100 {
        group.node(old).enqueue(ticket(n)).await.unwrap();
    }
    group.converge().await;
    let survivor = follower_of(&group, old);
    let leased = group
        .node(survivor)
        .lease(&WorkerId(format!("n{survivor}/w0/1")), 5, 60_000)
        .await
        .unwrap();
    assert_eq!(leased.len(), 5);

    let stopped = Instant::now();
    group.stop(old).await;
    // Writes issued right away wait out the election rather than fail.
    let writes = {
        let via = group.node(survivor).clone();
        tokio::spawn(async move {
            for n in 100..120 {
                via.enqueue(ticket(n)).await.unwrap();
            }
        })
    };
    let new = group.leader().await;
    let took = stopped.elapsed();
    writes.await.unwrap();
    eprintln!(
        "leader {old} stopped; node {new} leads after {took:?} (delay {delay:?} per message)"
    );
    assert_ne!(new, old);
    for lease in &leased {
        assert!(group
            .node(new)
            .complete(&lease.job, lease.fencing)
            .await
            .unwrap());
    }

    group.restart(old).await;
    group.converge().await;
    for s in group.running() {
        let stats = s.stats();
        assert_eq!(
            stats.total_enqueued,
            120,
            "node {} lost jobs",
            s.cluster_status().node_id
        );
        assert_eq!(stats.lanes[0].queued, 115);
    }
    assert_eq!(group.node(old).cluster_status().state, "follower");
    // The restarted node serves writes again, through the new leader.
    group.node(old).enqueue(ticket(120)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_losing_the_leader() {
    survives_losing_its_leader(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_losing_the_leader_with_30ms_per_message() {
    survives_losing_its_leader(Duration::from_millis(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_majority_is_needed_to_write() {
    let mut group = Group::start(3, Duration::ZERO).await;
    let leader = group.leader().await;
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    group.stop(others[0]).await;
    group.node(leader).enqueue(ticket(0)).await.unwrap();
    group.stop(others[1]).await;
    // Alone, the leader cannot commit: the write times out or is refused, but never "succeeds".
    let alone = tokio::time::timeout(
        Duration::from_secs(3),
        group.node(leader).enqueue(ticket(1)),
    )
    .await;
    assert!(
        !matches!(alone, Ok(Ok(()))),
        "a lone node of three committed a write"
    );
    group.restart(others[0]).await;
    group.node(others[0]).enqueue(ticket(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_as_learner_is_promoted_and_another_is_removed() {
    let group = Group::start(3, Duration::ZERO).await;
    for n in 0..20 {
        group.node(1).enqueue(ticket(n)).await.unwrap();
    }
    // Node 4 starts alone with an empty log: it does not found a group of its own.
    let root = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let joining = tokio::spawn({
        let (dir, peers) = (root.path().to_owned(), BTreeMap::from([(4, addr.clone())]));
        async move {
            Scheduler::open_group(
                &dir,
                config(4, Duration::ZERO),
                RaftGroup {
                    listener,
                    peers,
                    secret: secret(),
                },
            )
            .await
        }
    });
    let status = group
        .node(2)
        .change_membership(MembershipChange::AddLearner { id: 4, addr })
        .await
        .unwrap();
    assert_eq!(status.learners, vec![4]);
    let four = joining.await.unwrap().unwrap();
    group.converge().await;
    until_enqueued(&four, 20, "the learner did not copy the log").await;

    let status = group
        .node(3)
        .change_membership(MembershipChange::Promote { id: 4 })
        .await
        .unwrap();
    assert_eq!(status.voters, vec![1, 2, 3, 4]);
    assert!(status.learners.is_empty());

    let leader = group.leader().await;
    let removed = follower_of(&group, leader);
    let status = four
        .change_membership(MembershipChange::Remove { id: removed })
        .await
        .unwrap();
    let expected: Vec<u64> = [1, 2, 3, 4]
        .into_iter()
        .filter(|id| *id != removed)
        .collect();
    assert_eq!(status.voters, expected);
    assert!(!status.nodes.contains_key(&removed));
    four.enqueue(ticket(20)).await.unwrap();
    // The write was forwarded and committed by the leader; node 4 applies it a beat later.
    until_enqueued(&four, 21, "the new voter did not apply its own write").await;

    let err = four
        .change_membership(MembershipChange::Promote { id: 9 })
        .await
        .unwrap_err();
    assert!(matches!(err, SchedError::Invalid(_)), "{err}");
}

/// A leader stopped with a lease out restarts on its old vote believing it still leads, while the
/// others have moved on past a snapshot. Its first write (taking back its workers' leases, as a
/// restarting node does) must reach the real leader, not wait forever on a proposal that the
/// snapshot replaced (openraft#1761: such a proposal is never answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_restarting_behind_a_snapshot_writes_through_the_new_leader() {
    let base = SchedConfig {
        snapshot_every_logs: 20,
        ..config(0, Duration::ZERO)
    };
    let mut group = Group::start_with(3, base).await;
    let old = group.leader().await;
    for n in 0..5 {
        group.node(old).enqueue(ticket(n)).await.unwrap();
    }
    let worker = WorkerId(format!("n{old}/w0/1"));
    let leased = group.node(old).lease(&worker, 1, 60_000).await.unwrap();
    assert_eq!(leased.len(), 1);
    group.stop(old).await;
    let survivor = follower_of(&group, old);
    for n in 5..405 {
        group.node(survivor).enqueue(ticket(n)).await.unwrap();
    }

    group.restart(old).await;
    // Its log is behind the others', so it cannot have won an election since: open_group must not
    // hand over a node that still takes itself for the leader.
    let status = group.node(old).cluster_status();
    assert_ne!(status.leader, Some(old), "{status:?}");
    let returned = tokio::time::timeout(
        Duration::from_secs(20),
        group.node(old).release_worker(&format!("n{old}/")),
    )
    .await
    .expect("the restarted node's first write never returned")
    .unwrap();
    assert_eq!(returned.len(), 1);
    assert_eq!(returned[0].job, leased[0].job);
    group.converge().await;
    until_enqueued(group.node(old), 405, "the restarted node did not catch up").await;
}
