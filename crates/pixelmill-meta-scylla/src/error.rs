//! CQL errors as `MetaError`: too few replicas, timeouts and overloaded or restarting nodes are
//! retryable (the API answers 503 with Retry-After); everything else is final.

use pixelmill_meta::MetaError;
use scylla::errors::{
    DbError, ExecutionError, NextPageError, NextRowError, PagerExecutionError, RequestAttemptError,
};

/// What `what` (e.g. "storing a job") ran into.
pub(crate) fn from_execution(what: &str, err: ExecutionError) -> MetaError {
    let message = format!("{what}: {err}");
    match &err {
        ExecutionError::RequestTimeout(_) => MetaError::Timeout(message),
        ExecutionError::EmptyPlan | ExecutionError::ConnectionPoolError(_) => {
            MetaError::Unavailable(message)
        }
        ExecutionError::LastAttemptError(attempt) => from_attempt(attempt, message),
        _ => MetaError::Internal(message),
    }
}

/// What `what` ran into while fetching the pages of a multi-row read.
pub(crate) fn from_pager(what: &str, err: PagerExecutionError) -> MetaError {
    match err {
        PagerExecutionError::NextPageError(err) => from_next_page(what, err),
        err => MetaError::Internal(format!("{what}: {err}")),
    }
}

pub(crate) fn from_next_row(what: &str, err: NextRowError) -> MetaError {
    match err {
        NextRowError::NextPageError(err) => from_next_page(what, err),
        err => unexpected(what, err),
    }
}

fn from_next_page(what: &str, err: NextPageError) -> MetaError {
    match err {
        NextPageError::RequestFailure(err) => from_execution(what, err.into_execution_error()),
        err => unexpected(what, err),
    }
}

fn from_attempt(err: &RequestAttemptError, message: String) -> MetaError {
    match err {
        RequestAttemptError::DbError(db, _) => match db {
            DbError::Unavailable { .. }
            | DbError::Overloaded
            | DbError::IsBootstrapping
            | DbError::RateLimitReached { .. } => MetaError::Unavailable(message),
            DbError::ReadTimeout { .. } | DbError::WriteTimeout { .. } => {
                MetaError::Timeout(message)
            }
            _ => MetaError::Internal(message),
        },
        RequestAttemptError::BrokenConnectionError(_)
        | RequestAttemptError::UnableToAllocStreamId => MetaError::Unavailable(message),
        _ => MetaError::Internal(message),
    }
}

/// A stored JSON body that no longer parses as its record.
pub(crate) fn corrupt(what: &str, err: impl std::fmt::Display) -> MetaError {
    MetaError::Corrupt(format!("{what}: {err}"))
}

/// A result that did not have the rows or columns the statement promises.
pub(crate) fn unexpected(what: &str, err: impl std::fmt::Display) -> MetaError {
    MetaError::Internal(format!(
        "{what}: unexpected result from the cluster ({err})"
    ))
}
