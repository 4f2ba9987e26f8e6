//! One actor shape for every role that works in turns (workers, notifier, sweeper, scheduler
//! ticker): take a turn; if there was work, take another at once; if not, wait for a wake-up or the
//! idle interval. A panic inside a turn fails the actor, and its supervisor restarts it.

use async_trait::async_trait;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub enum Pace {
    /// There may be more work: take the next turn now.
    Busy,
    /// Nothing to do: wait for a wake-up or the idle interval.
    Idle,
}

#[async_trait]
pub trait LoopTask: Send + Sync + 'static {
    /// Runs when the actor starts and every time it is restarted, before the first turn.
    async fn on_start(&self) -> Result<(), String> {
        Ok(())
    }
    async fn turn(&self) -> Result<Pace, String>;
    /// Longest wait between idle turns.
    fn idle_wait(&self) -> Duration;
    /// Signalled when work arrives, to end an idle wait early.
    fn wake(&self) -> Option<Arc<Notify>> {
        None
    }
}

pub struct LoopActor<T>(PhantomData<fn() -> T>);

impl<T> LoopActor<T> {
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

pub struct Turn;

impl<T: LoopTask> Actor for LoopActor<T> {
    type Msg = Turn;
    type State = Arc<T>;
    type Arguments = Arc<T>;

    async fn pre_start(
        &self,
        myself: ActorRef<Turn>,
        task: Arc<T>,
    ) -> Result<Arc<T>, ActorProcessingErr> {
        task.on_start().await?;
        myself.cast(Turn)?;
        Ok(task)
    }

    async fn handle(
        &self,
        myself: ActorRef<Turn>,
        _turn: Turn,
        task: &mut Arc<T>,
    ) -> Result<(), ActorProcessingErr> {
        let pace = task.turn().await.unwrap_or_else(|err| {
            tracing::warn!(actor = ?myself.get_name(), %err, "turn failed; retrying after the idle interval");
            Pace::Idle
        });
        if let Pace::Idle = pace {
            let wait = tokio::time::sleep(task.idle_wait());
            match task.wake() {
                Some(wake) => tokio::select! { _ = wait => {}, _ = wake.notified() => {} },
                None => wait.await,
            }
        }
        myself.cast(Turn)?;
        Ok(())
    }
}
