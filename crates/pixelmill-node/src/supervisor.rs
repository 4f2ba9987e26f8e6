//! A one-for-one supervisor: a child that fails or stops is restarted alone, up to a restart
//! intensity; beyond it the supervisor fails too and its own supervisor decides (at the root, the
//! node stops rather than spin).

use crate::looping::{LoopActor, LoopTask};
use crate::metrics::NodeMetrics;
use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

type SpawnFn =
    Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;

/// How to (re)start one child.
#[derive(Clone)]
pub struct ChildSpec {
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
                let (name, task) = (actor_name.clone(), task.clone());
                Box::pin(async move {
                    let (actor, _) =
                        Actor::spawn_linked(Some(name), LoopActor::<T>::new(), task, parent)
                            .await?;
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
        let name = name.into();
        let actor_name = name.clone();
        let make = Arc::new(make);
        Self {
            name,
            spawn: Arc::new(move |parent| {
                let (name, make) = (actor_name.clone(), make.clone());
                Box::pin(async move {
                    let (actor, args) = make();
                    let (actor, _) = Actor::spawn_linked(Some(name), actor, args, parent).await?;
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
    children: Vec<(ChildSpec, VecDeque<Instant>)>,
    metrics: NodeMetrics,
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
        for child in &args.children {
            child.spawn(myself.get_cell()).await?;
        }
        Ok(SupervisorState {
            children: args
                .children
                .into_iter()
                .map(|c| (c, VecDeque::new()))
                .collect(),
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
        let name = cell.get_name().unwrap_or_default();
        let Some((spec, restarts)) = state.children.iter_mut().find(|(c, _)| c.name == name) else {
            return Ok(());
        };
        let now = Instant::now();
        restarts.retain(|at| now.duration_since(*at) < RESTART_WINDOW);
        if restarts.len() >= MAX_RESTARTS {
            return Err(format!(
                "{name} {why}, and was restarted {MAX_RESTARTS} times within a minute; giving up"
            )
            .into());
        }
        restarts.push_back(now);
        tracing::warn!(actor = %name, %why, "restarting");
        state.metrics.restarted(&name);
        spec.spawn(myself.get_cell()).await?;
        Ok(())
    }
}
