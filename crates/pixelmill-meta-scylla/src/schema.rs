//! The keyspace and its tables as versioned migrations, applied at start-up (and by
//! `pixelmill migrate`) and recorded in `schema_migrations`. Every statement is idempotent, so a
//! run cut off half-way is finished by the next one.
//!
//! Tables follow the queries (no ALLOW FILTERING, no secondary indexes): each record is read by
//! its partition key, and the two scans the sweeper and the notifier need have tables of their
//! own, bucketed so no partition grows without bound, as has each region's replication queue.

use std::collections::BTreeMap;

use pixelmill_meta::MetaError;
use scylla::client::session::Session;
use scylla::statement::unprepared::Statement;
use scylla::statement::Consistency;

use crate::config::ScyllaConfig;
use crate::error::{from_execution, unexpected};

/// Buckets of `outbox_due`: the notifier reads all of them, and each holds only pending events.
pub(crate) const OUTBOX_SHARDS: i32 = 16;
/// Buckets of each day of `links_by_expiry`, so a day of a busy service (a million links is
/// some 500 MB of index rows) is split into partitions of a size Cassandra handles well.
pub(crate) const LINK_EXPIRY_SHARDS: i32 = 8;

struct Migration {
    version: i32,
    description: &'static str,
    /// CQL with `{ks}` for the keyspace.
    statements: &'static [&'static str],
}

/// Buckets of each (source, target) pair's `replication_queue`: the replicator reads all of
/// them, and each holds only blobs not yet copied.
pub(crate) const REPLICATION_SHARDS: i32 = 4;
/// Buckets of each region's `jobs_by_owner`: an adopter reads all of them, and each holds only
/// unfinished jobs.
pub(crate) const JOB_OWNER_SHARDS: i32 = 8;
/// Buckets of `api_key_list`: the operator's listing reads all of them.
pub(crate) const API_KEY_BUCKETS: i32 = 8;

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description:
            "images, jobs, links with their expiry and blob indexes, idempotency keys, outbox",
        statements: &[
            // Records are stored whole as JSON (`body`), next to the columns their queries use.
            "CREATE TABLE IF NOT EXISTS {ks}.images (
            tenant text, id text, body text,
            PRIMARY KEY ((tenant, id)))",
            // `owner`: the region running the job; another region takes it over with an LWT on it.
            "CREATE TABLE IF NOT EXISTS {ks}.jobs (
            tenant text, id text, body text, owner text,
            PRIMARY KEY ((tenant, id)))",
            "CREATE TABLE IF NOT EXISTS {ks}.links (
            link_token text PRIMARY KEY, body text)",
            // Links by the UTC day they expire on, for the sweeper: a few partitions per day. The
            // sweeper deletes what it has handled, so tombstones are purged after 3 h (the hint
            // window) rather than the default 10 days, which scans would have to step over.
            "CREATE TABLE IF NOT EXISTS {ks}.links_by_expiry (
            day int, shard int, expires_at bigint, link_token text, body text,
            PRIMARY KEY ((day, shard), expires_at, link_token))
            WITH CLUSTERING ORDER BY (expires_at ASC, link_token ASC)
            AND gc_grace_seconds = 10800",
            // Which links point at an output, so the sweeper deletes it only when none does.
            "CREATE TABLE IF NOT EXISTS {ks}.links_by_blob (
            blob_key text, link_token text,
            PRIMARY KEY ((blob_key), link_token))",
            "CREATE TABLE IF NOT EXISTS {ks}.idempotency_keys (
            tenant text, idem_key text, body text, expires_at bigint,
            PRIMARY KEY ((tenant, idem_key)))",
            "CREATE TABLE IF NOT EXISTS {ks}.outbox (
            event_id text PRIMARY KEY, body text, next_attempt_at bigint)",
            // Pending events by due time, in a few shards of the event id, with their bodies so the
            // notifier reads nothing else.
            "CREATE TABLE IF NOT EXISTS {ks}.outbox_due (
            shard int, next_attempt_at bigint, event_id text, body text,
            PRIMARY KEY ((shard), next_attempt_at, event_id))
            WITH CLUSTERING ORDER BY (next_attempt_at ASC, event_id ASC)
            AND gc_grace_seconds = 10800",
        ],
    },
    Migration {
        version: 2,
        description: "replication queue per source and target region, blob replica records",
        statements: &[
            // Blobs a region wrote that a peer may lack, oldest first, for that region's
            // replicator; rows go once copied, hence the short gc_grace.
            "CREATE TABLE IF NOT EXISTS {ks}.replication_queue (
            source text, target text, shard int, queued_at bigint, blob_key text, body text,
            PRIMARY KEY ((source, target, shard), queued_at, blob_key))
            WITH CLUSTERING ORDER BY (queued_at ASC, blob_key ASC)
            AND gc_grace_seconds = 10800",
            // The regions holding each blob: where a read-through fetches from, and what a delete
            // must reach.
            "CREATE TABLE IF NOT EXISTS {ks}.blob_replicas (
            blob_key text, region text,
            PRIMARY KEY ((blob_key), region))",
        ],
    },
    Migration {
        version: 3,
        description: "unfinished jobs by owning region, node heartbeats, region states",
        statements: &[
            // What a region adopts from one that has gone: its jobs not yet finished. Rows go
            // when a job finishes or moves, hence the short gc_grace.
            "CREATE TABLE IF NOT EXISTS {ks}.jobs_by_owner (
            owner text, shard int, tenant text, id text,
            PRIMARY KEY ((owner, shard), tenant, id))
            WITH gc_grace_seconds = 10800",
            // Each node's latest beat, per region; a node that stopped beating drops out by TTL.
            "CREATE TABLE IF NOT EXISTS {ks}.region_heartbeats (
            region text, node bigint, body text,
            PRIMARY KEY ((region), node))",
            "CREATE TABLE IF NOT EXISTS {ks}.region_states (
            region text PRIMARY KEY, body text)",
        ],
    },
    Migration {
        version: 4,
        description: "API keys and tenants",
        statements: &[
            // A request reads its key by id: one partition per key.
            "CREATE TABLE IF NOT EXISTS {ks}.api_keys (
            id text PRIMARY KEY, body text)",
            // The operator's listing: keys in a few buckets of their id, so no partition holds
            // every key.
            "CREATE TABLE IF NOT EXISTS {ks}.api_key_list (
            bucket int, id text, body text,
            PRIMARY KEY ((bucket), id))",
            "CREATE TABLE IF NOT EXISTS {ks}.tenants (
            tenant text PRIMARY KEY, body text)",
        ],
    },
];

/// Creates or updates the keyspace and applies the migrations it lacks; returns the versions
/// applied by this call.
pub(crate) async fn migrate(
    session: &Session,
    config: &ScyllaConfig,
) -> Result<Vec<i32>, MetaError> {
    let ks = &config.keyspace;
    let replication = replication_map(&config.replication);
    ddl(
        session,
        &format!("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {replication}"),
    )
    .await?;
    let current = current_replication(session, ks).await?;
    if current != expected_replication(&config.replication) {
        tracing::warn!(
            keyspace = %ks, ?current, wanted = %replication,
            "changing the keyspace's replication; run a full repair so existing data reaches the new replicas"
        );
        ddl(
            session,
            &format!("ALTER KEYSPACE {ks} WITH replication = {replication}"),
        )
        .await?;
    }
    ddl(
        session,
        &format!(
            "CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (
                version int PRIMARY KEY, description text, applied_at timestamp)"
        ),
    )
    .await?;
    let applied = applied_versions(session, ks).await?;
    let mut now_applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        for statement in migration.statements {
            ddl(session, &statement.replace("{ks}", ks)).await?;
        }
        let mut record = Statement::new(format!(
            "INSERT INTO {ks}.schema_migrations (version, description, applied_at) \
             VALUES (?, ?, toTimestamp(now()))"
        ));
        record.set_consistency(Consistency::LocalQuorum);
        session
            .query_unpaged(record, (migration.version, migration.description))
            .await
            .map_err(|e| from_execution("recording a schema migration", e))?;
        tracing::info!(
            version = migration.version,
            description = migration.description,
            "applied a schema migration"
        );
        now_applied.push(migration.version);
    }
    Ok(now_applied)
}

/// A schema change, waited on until every node agrees on the schema.
async fn ddl(session: &Session, cql: &str) -> Result<(), MetaError> {
    let what = || {
        format!(
            "changing the schema ({})",
            cql.split_whitespace().take(6).collect::<Vec<_>>().join(" ")
        )
    };
    session
        .query_unpaged(cql, ())
        .await
        .map_err(|e| from_execution(&what(), e))?;
    session.await_schema_agreement().await.map_err(|e| {
        MetaError::Unavailable(format!("{}: nodes disagree on the schema ({e})", what()))
    })?;
    Ok(())
}

fn replication_map(replication: &BTreeMap<String, u32>) -> String {
    let entries: Vec<String> = replication
        .iter()
        .map(|(dc, n)| format!("'{dc}': {n}"))
        .collect();
    format!(
        "{{'class': 'NetworkTopologyStrategy', {}}}",
        entries.join(", ")
    )
}

/// The replication map as `system_schema.keyspaces` reports it.
fn expected_replication(replication: &BTreeMap<String, u32>) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = replication
        .iter()
        .map(|(dc, n)| (dc.clone(), n.to_string()))
        .collect();
    map.insert(
        "class".into(),
        "org.apache.cassandra.locator.NetworkTopologyStrategy".into(),
    );
    map
}

async fn current_replication(
    session: &Session,
    ks: &str,
) -> Result<BTreeMap<String, String>, MetaError> {
    let what = "reading the keyspace's replication";
    let rows = session
        .query_unpaged(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (ks,),
        )
        .await
        .map_err(|e| from_execution(what, e))?
        .into_rows_result()
        .map_err(|e| unexpected(what, e))?;
    let (map,) = rows
        .single_row::<(BTreeMap<String, String>,)>()
        .map_err(|e| unexpected(what, e))?;
    Ok(map)
}

async fn applied_versions(session: &Session, ks: &str) -> Result<Vec<i32>, MetaError> {
    let what = "reading the applied schema migrations";
    let mut statement = Statement::new(format!("SELECT version FROM {ks}.schema_migrations"));
    statement.set_consistency(Consistency::LocalQuorum);
    let rows = session
        .query_unpaged(statement, ())
        .await
        .map_err(|e| from_execution(what, e))?
        .into_rows_result()
        .map_err(|e| unexpected(what, e))?;
    rows.rows::<(i32,)>()
        .map_err(|e| unexpected(what, e))?
        .map(|row| row.map(|(v,)| v).map_err(|e| unexpected(what, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_is_written_and_read_back_in_cassandra_s_terms() {
        let replication = BTreeMap::from([("dc1".to_owned(), 3), ("dc2".to_owned(), 2)]);
        assert_eq!(
            replication_map(&replication),
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}"
        );
        let expected = expected_replication(&replication);
        assert_eq!(expected["dc1"], "3");
        assert!(expected["class"].ends_with("NetworkTopologyStrategy"));
    }

    #[test]
    fn migrations_are_numbered_in_order_and_idempotent() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        for statement in MIGRATIONS.iter().flat_map(|m| m.statements) {
            assert!(statement.contains("IF NOT EXISTS"), "{statement}");
            assert!(statement.contains("{ks}."), "{statement}");
        }
    }
}
