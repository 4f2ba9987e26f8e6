//! A one-for-one supervisor: a child that fails or stops is restarted alone, up to a restart
//! intensity; beyond it the supervisor fails too and its own supervisor decides (at the root, the
//! node stops rather than spin).

use crate::looping::{LoopActor, LoopTask};
use crate::metrics::NodeMetrics;
use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

type SpawnFn =
    Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;

/// How to (re)start one child. Children are known by their actor ids, never by registered
/// names (process-wide in ractor), so several nodes run in one process.
#[derive(Clone)]
pub struct ChildSpec {
    /// What logs and the restart metric call it.
    pub name: String,
    spawn: SpawnFn,
}

impl ChildSpec {
    pub fn looping<T: LoopTask>(name: impl Into<String>, task: Arc<T>) -> Self {
        let name = name.into();
        let actor_name = name.clone();
        Self {
            name,
            spawn: Arc::new(move |parent| {
                let (actor, task) = (LoopActor::<T>::new(actor_name.clone()), task.clone());
                Box::pin(async move {
                    let (actor, _) = Actor::spawn_linked(None, actor, task, parent).await?;
                    Ok(actor.get_cell())
                })
            }),
        }
    }

    pub fn actor<A>(
        name: impl Into<String>,
        make: impl Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    ) -> Self
    where
        A: Actor,
    {
        let make = Arc::new(make);
        Self {
            name: name.into(),
            spawn: Arc::new(move |parent| {
                let make = make.clone();
                Box::pin(async move {
                    let (actor, args) = make();
                    let (actor, _) = Actor::spawn_linked(None, actor, args, parent).await?;
                    Ok(actor.get_cell())
                })
            }),
        }
    }

    pub fn supervisor(
        name: impl Into<String>,
        children: Vec<ChildSpec>,
        metrics: NodeMetrics,
    ) -> Self {
        Self::actor(name, move || {
            (
                Supervisor,
                SupervisorArgs {
                    children: children.clone(),
                    metrics: metrics.clone(),
                },
            )
        })
    }

    pub async fn spawn(&self, parent: ActorCell) -> Result<ActorCell, SpawnErr> {
        (self.spawn)(parent).await
    }
}

/// More restarts than this within `RESTART_WINDOW` means the child cannot recover by restarting.
const MAX_RESTARTS: usize = 20;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

pub struct Supervisor;

pub struct SupervisorArgs {
    pub children: Vec<ChildSpec>,
    pub metrics: NodeMetrics,
}

pub struct SupervisorState {
    children: Vec<Child>,
    metrics: NodeMetrics,
}

struct Child {
    spec: ChildSpec,
    /// The actor running it now.
    id: ActorId,
    restarts: VecDeque<Instant>,
}

impl Actor for Supervisor {
    type Msg = ();
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut children = Vec::with_capacity(args.children.len());
        for spec in args.children {
            let id = spec.spawn(myself.get_cell()).await?.get_id();
            children.push(Child {
                spec,
                id,
                restarts: VecDeque::new(),
            });
        }
        Ok(SupervisorState {
            children,
            metrics: args.metrics,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<()>,
        _state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        myself
            .stop_children_and_wait(None, Some(Duration::from_secs(10)))
            .await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, format!("stopped: {}", reason.unwrap_or_default()))
            }
            _ => return Ok(()),
        };
        let Some(child) = state.children.iter_mut().find(|c| c.id == cell.get_id()) else {
            return Ok(());
        };
        let name = child.spec.name.clone();
        let now = Instant::now();
        child
            .restarts
            .retain(|at| now.duration_since(*at) < RESTART_WINDOW);
        if child.restarts.len() >= MAX_RESTARTS {
            return Err(format!(
                "{name} {why}, and was restarted {MAX_RESTARTS} times within a minute; giving up"
            )
            .into());
        }
        child.restarts.push_back(now);
        tracing::warn!(actor = %name, %why, "restarting");
        state.metrics.restarted(&name);
        child.id = child.spec.spawn(myself.get_cell()).await?.get_id();
        Ok(())
    }
}
