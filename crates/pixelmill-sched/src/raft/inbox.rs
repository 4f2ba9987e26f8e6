//! Snapshot chunks from the leader, assembled here rather than in openraft: openraft 0.9's
//! `install_snapshot` seeks to whatever offset a chunk names and writes there, so one chunk with a
//! huge offset, or a stream that never ends, grows the buffer without bound. Here a chunk must
//! start where the last one ended and stay under the cap; the whole snapshot then goes to
//! `Raft::install_full_snapshot`.

use super::TypeConfig;
use openraft::error::{InstallSnapshotError, SnapshotMismatch};
use openraft::raft::InstallSnapshotRequest;
use openraft::{Snapshot, SnapshotMeta, SnapshotSegmentId};
use std::io::Cursor;
use std::sync::Mutex;

/// Why a chunk was refused; the partial snapshot is dropped either way, and the leader starts over.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotRefused {
    #[error(
        "snapshot {id}: a chunk at offset {got} where {expected} was next; resend from offset 0"
    )]
    OutOfOrder { id: String, expected: u64, got: u64 },
    #[error("snapshot {id} would be {size} bytes, more than this node's cap of {cap}; raise --raft-max-snapshot-bytes on this node")]
    TooLarge { id: String, size: u64, cap: u64 },
}

impl SnapshotRefused {
    /// What openraft's leader understands: a mismatch, after which it resends from offset 0.
    pub(crate) fn mismatch(&self) -> Option<InstallSnapshotError> {
        let SnapshotRefused::OutOfOrder { id, got, .. } = self else {
            return None;
        };
        let segment = |offset| SnapshotSegmentId {
            id: id.clone(),
            offset,
        };
        Some(InstallSnapshotError::SnapshotMismatch(SnapshotMismatch {
            expect: segment(0),
            got: segment(*got),
        }))
    }
}

/// The snapshot being received, if any, and the most bytes one may have.
pub(crate) struct Inbox {
    cap: u64,
    partial: Mutex<Option<Partial>>,
}

struct Partial {
    meta: SnapshotMeta<u64, openraft::BasicNode>,
    data: Vec<u8>,
}

impl Inbox {
    pub(crate) fn new(cap: u64) -> Inbox {
        Inbox {
            cap,
            partial: Mutex::new(None),
        }
    }

    /// Adds a chunk; the whole snapshot once the last one is in.
    pub(crate) fn receive(
        &self,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<Option<Snapshot<TypeConfig>>, SnapshotRefused> {
        let mut partial = self.partial.lock().unwrap();
        let id = req.meta.snapshot_id.clone();
        // A chunk at offset 0 starts a snapshot afresh, whatever came before.
        if req.offset == 0 {
            *partial = Some(Partial {
                meta: req.meta,
                data: Vec::new(),
            });
        }
        let expected = match partial.as_ref() {
            Some(p) if p.meta.snapshot_id == id => p.data.len() as u64,
            _ => 0,
        };
        if req.offset != expected {
            *partial = None;
            return Err(SnapshotRefused::OutOfOrder {
                id,
                expected,
                got: req.offset,
            });
        }
        let size = expected + req.data.len() as u64;
        if size > self.cap {
            *partial = None;
            let cap = self.cap;
            return Err(SnapshotRefused::TooLarge { id, size, cap });
        }
        let p = partial
            .as_mut()
            .expect("a chunk at the expected offset has its partial");
        p.data.extend_from_slice(&req.data);
        if !req.done {
            return Ok(None);
        }
        let Partial { meta, data } = partial.take().expect("checked above");
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
