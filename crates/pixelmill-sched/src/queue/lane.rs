//! One lane's ready index: a queue per tenant, served round-robin so one busy tenant cannot starve the others.

use pixelmill_core::{JobId, TenantId};
use std::collections::BTreeMap;
use std::ops::Bound;

/// A queued job's position: the time it may run from, then its arrival sequence to break ties. Ordering by
/// ready time first lets a retry waiting out its backoff sit behind jobs that are ready now.
pub(crate) type Slot = (i64, u64);

/// Derived from the persisted jobs (see `QueueState::from`), so it is never serialized itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lane {
    tenants: BTreeMap<TenantId, BTreeMap<Slot, JobId>>,
    queued: usize,
    pub(crate) leased: usize,
}

impl Lane {
    pub(crate) fn push(&mut self, tenant: &TenantId, slot: Slot, job: JobId) {
        self.tenants
            .entry(tenant.clone())
            .or_default()
            .insert(slot, job);
        self.queued += 1;
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    pub(crate) fn has_ready(&self, now_ms: i64) -> bool {
        self.tenants.values().any(|q| is_ready(q, now_ms))
    }

    /// The earliest ready time of any queued job: the basis of the lane's oldest-age gauge.
    pub(crate) fn oldest_ready_at(&self) -> Option<i64> {
        self.tenants
            .values()
            .filter_map(|q| q.keys().next().map(|slot| slot.0))
            .min()
    }

    /// Takes the head job of the first tenant after `after` (wrapping around) whose head is ready.
    pub(crate) fn pop_ready(
        &mut self,
        after: Option<&TenantId>,
        now_ms: i64,
    ) -> Option<(TenantId, JobId)> {
        let tenant = match after {
            Some(last) => self
                .tenants
                .range::<TenantId, _>((Bound::Excluded(last), Bound::Unbounded))
                .chain(self.tenants.range::<TenantId, _>(..=last))
                .find(|(_, q)| is_ready(q, now_ms))
                .map(|(t, _)| t.clone()),
            None => self
                .tenants
                .iter()
                .find(|(_, q)| is_ready(q, now_ms))
                .map(|(t, _)| t.clone()),
        }?;
        let queue = self.tenants.get_mut(&tenant)?;
        let (_, job) = queue.pop_first()?;
        if queue.is_empty() {
            self.tenants.remove(&tenant);
        }
        self.queued -= 1;
        Some((tenant, job))
    }
}

fn is_ready(queue: &BTreeMap<Slot, JobId>, now_ms: i64) -> bool {
    queue.keys().next().is_some_and(|slot| slot.0 <= now_ms)
}
