//! One actor shape for every role that works in turns (workers, notifier, sweeper, scheduler
//! ticker): take a turn; if there was work, take another at once; if not, take the next one at a
//! wake-up or after the idle interval. A panic inside a turn fails the actor, and its supervisor
//! restarts it.

use async_trait::async_trait;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

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

pub struct LoopActor<T> {
    /// What its logs call it.
    name: String,
    task: PhantomData<fn() -> T>,
}

impl<T> LoopActor<T> {
    pub fn new(name: String) -> Self {
        Self {
            name,
            task: PhantomData,
        }
    }
}

pub enum Turn {
    /// The idle interval of the turn numbered so has passed; stale if another turn ran since.
    Timer(u64),
    /// Work may have arrived (or the last turn was busy): take a turn now.
    Now,
}

pub struct LoopState<T> {
    task: Arc<T>,
    /// Numbers turns, so a timer armed before a wake-up does not start a second chain of turns.
    turns: u64,
    waker: Option<JoinHandle<()>>,
}

impl<T: LoopTask> Actor for LoopActor<T> {
    type Msg = Turn;
    type State = LoopState<T>;
    type Arguments = Arc<T>;

    async fn pre_start(
        &self,
        myself: ActorRef<Turn>,
        task: Arc<T>,
    ) -> Result<LoopState<T>, ActorProcessingErr> {
        task.on_start().await?;
        // Idle waits are timers, never sleeps inside a handler, so a stop is served at once.
        let waker = task.wake().map(|wake| {
            let myself = myself.clone();
            tokio::spawn(async move {
                loop {
                    wake.notified().await;
                    if myself.cast(Turn::Now).is_err() {
                        return;
                    }
                }
            })
        });
        myself.cast(Turn::Now)?;
        Ok(LoopState {
            task,
            turns: 0,
            waker,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Turn>,
        turn: Turn,
        state: &mut LoopState<T>,
    ) -> Result<(), ActorProcessingErr> {
        if matches!(turn, Turn::Timer(n) if n != state.turns) {
            return Ok(());
        }
        state.turns += 1;
        let pace = state.task.turn().await.unwrap_or_else(|err| {
            tracing::warn!(actor = %self.name, %err, "turn failed; retrying after the idle interval");
            Pace::Idle
        });
        match pace {
            Pace::Busy => myself.cast(Turn::Now)?,
            Pace::Idle => {
                let armed = state.turns;
                myself.send_after(state.task.idle_wait(), move || Turn::Timer(armed));
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Turn>,
        state: &mut LoopState<T>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(waker) = state.waker.take() {
            waker.abort();
        }
        Ok(())
    }
}
