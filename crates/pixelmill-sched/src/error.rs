/// Scheduler failures. Retryable ones (see [`SchedError::is_retryable`]) clear up by themselves: back off and
/// call again. The others need an operator or a code fix. Serde because a follower forwards writes
/// to the leader and passes its answer on unchanged.
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum SchedError {
    #[error("the job queue is full; retry after {retry_after_ms} ms, or raise the scheduler's queue bound if this persists")]
    Overloaded { retry_after_ms: u64 },
    #[error("this node is not the scheduler leader (leader: {}); send the request to the leader", leader.map_or_else(|| "unknown, election in progress".to_owned(), |id| format!("node {id}")))]
    NotLeader { leader: Option<u64> },
    #[error("the scheduler is unavailable: {0}; retry shortly")]
    Unavailable(String),
    #[error("invalid scheduler request: {0}")]
    Invalid(String),
    #[error("scheduler storage failed: {0}")]
    Storage(String),
    #[error("the scheduler has stopped: {0}; restart the node (check the log for a storage error first)")]
    Fatal(String),
}

impl SchedError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SchedError::Overloaded { .. }
                | SchedError::NotLeader { .. }
                | SchedError::Unavailable(_)
        )
    }
}
