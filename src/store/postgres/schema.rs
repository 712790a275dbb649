//! The store's tables, created on first open in the URL's schema, and the
//! checks of every open: a schema holding tables that are not jobq's is
//! `Corrupt` (nothing is created or changed in it), a store of a newer
//! jobq is `Version`. Concurrent first opens are ordered by an advisory
//! transaction lock, so exactly one creates the tables.

use tokio_postgres::Client;

use super::pool::{Fail, Settings};
use super::url::quote_ident;
use crate::error::Error;

/// Bumped on every schema change that older jobq builds must not ignore;
/// stored in `meta`. 1: the first; 2: `queues.paused` (an older build would
/// deliver from a paused queue, so it refuses the store); 3: `schedules`
/// (periodic jobs; an older build would not fire them) and `queue_limits`
/// (an older build would deliver past a queue's limits), done jobs and
/// results (`v3_results`: an older build would list done jobs as dead and
/// never prune them). An open by this build upgrades an older store in
/// place (`upgrade`).
pub(crate) const SCHEMA_VERSION: i64 = 3;

/// Schema version 3, periodic jobs (`jobq_schedule`): one row per schedule,
/// names global to the store. `next_slot` is when its next job is due
/// (NULL: its spec matches no time any more); a fire locks the due rows
/// (FOR UPDATE SKIP LOCKED), advances each slot by compare-and-set and
/// inserts its job in one transaction. Run by the fresh-create path (`ddl`)
/// and by `upgrade`; `{s}` is the quoted schema.
fn ddl_v3_schedules(s: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {s}.schedules (
            name         text     PRIMARY KEY,
            queue        text     NOT NULL,
            spec         text     NOT NULL,
            payload      bytea    NOT NULL,
            priority     integer  NOT NULL,
            delay_ms     bigint   NOT NULL,
            max_attempts bigint   NOT NULL,
            lease_ms     bigint   NOT NULL,
            next_slot    bigint,
            created_at   bigint   NOT NULL,
            updated_at   bigint   NOT NULL
        );
        CREATE INDEX IF NOT EXISTS schedules_next ON {s}.schedules (next_slot) WHERE next_slot IS NOT NULL;"
    )
}

/// Schema v3, per-queue limits (`Queue::configure`): one row per queue that
/// has a limit, with its fixed rate window (see qconfig.rs). A claim of a
/// limited queue locks its row (FOR UPDATE), so concurrent claims of it
/// count each other's deliveries; unlimited queues have no row and their
/// claims lock nothing. Both in a new store's schema and in the upgrade.
fn limits_ddl(s: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {s}.queue_limits (
            queue        text PRIMARY KEY,
            -- NULL: no cap on the jobs reserved with a live lease at once
            max_reserved bigint,
            -- NULL (both): no rate limit; else at most rate_jobs per rate_per_ms
            rate_jobs    bigint,
            rate_per_ms  bigint,
            -- the current (or last) rate window: when it opened, deliveries in it
            window_start bigint NOT NULL DEFAULT 0,
            window_count bigint NOT NULL DEFAULT 0
        );"
    )
}

/// `meta.value` of key `store` in a jobq store.
const MARKER: &str = "jobq";

fn ddl(s: &str) -> String {
    format!(
        "CREATE TABLE {s}.jobs (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            queue        text     NOT NULL,
            -- 0 pending, 1 reserved, 2 dead, 3 scheduled, 4 done (schema version 3)
            state        smallint NOT NULL,
            priority     integer  NOT NULL,
            -- pending/scheduled: when it may run; dead: when it died
            run_at       bigint   NOT NULL,
            attempts     bigint   NOT NULL DEFAULT 0,
            max_attempts bigint   NOT NULL,
            lease_ms     bigint   NOT NULL,
            -- reserved: when the lease ends; in no index, so a touch is a HOT update
            lease_until  bigint,
            -- counts deliveries; a finish must present the current one
            lease_token  bigint   NOT NULL DEFAULT 0,
            -- the owner id (session advisory lock) of the handle holding the lease
            lease_owner  bigint,
            unique_key   text,
            payload      bytea    NOT NULL,
            created_at   bigint   NOT NULL,
            updated_at   bigint   NOT NULL,
            last_error   text
        ) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
        CREATE TABLE {s}.queues (
            name       text PRIMARY KEY,
            created_at bigint NOT NULL,
            -- no job of the queue is delivered (schema version 2)
            paused     boolean NOT NULL DEFAULT false
        );
        CREATE TABLE {s}.meta (
            key   text PRIMARY KEY,
            value text NOT NULL
        );
        CREATE INDEX jobs_ready     ON {s}.jobs (queue, priority, id)  WHERE state = 0;
        CREATE INDEX jobs_leased    ON {s}.jobs (queue, lease_owner)   WHERE state = 1;
        CREATE INDEX jobs_dead      ON {s}.jobs (queue, id)            WHERE state = 2;
        CREATE INDEX jobs_scheduled ON {s}.jobs (queue, run_at)        WHERE state = 3;
        CREATE UNIQUE INDEX jobs_unique ON {s}.jobs (queue, unique_key)
            WHERE unique_key IS NOT NULL AND state IN (0, 1, 3);
        INSERT INTO {s}.meta (key, value) VALUES ('store', '{MARKER}'), ('version', '{SCHEMA_VERSION}');"
    )
}

/// Schema version 3, results and retention (docs/results.md): run on a new
/// store after `ddl`, and by `upgrade` on a store of version 1 or 2 (a
/// column without a default rewrites nothing). A done job (state 4: acked
/// through a handle with keep_done_ms > 0) keeps its row with `result`
/// until `run_at`, its expiry; the pruning (`sql::PRUNE_DONE`) finds expired
/// ones through `jobs_done`. State 4 is in none of the other partial
/// indexes: never claimed, and its unique key is free (`jobs_unique`
/// covers states 0, 1, 3 only).
fn v3_results(s: &str) -> String {
    format!(
        "ALTER TABLE {s}.jobs ADD COLUMN result bytea;
         CREATE INDEX jobs_done ON {s}.jobs (run_at) WHERE state = 4;"
    )
}

/// The advisory lock key ordering first opens of `schema` (any two
/// schemas sharing a key only wait for each other a moment).
fn lock_key(schema: &str) -> i64 {
    (super::fnv64(schema.as_bytes()) ^ 0x6a6f_6271_0000_0000) as i64
}

/// Checks the schema and creates the tables if it has none.
pub(crate) async fn prepare(client: &Client, settings: &Settings) -> Result<(), Fail> {
    let schema = &settings.url.schema;
    client.batch_execute("BEGIN").await?;
    let result = async {
        client.execute("SELECT pg_catalog.pg_advisory_xact_lock($1::int8)", &[&lock_key(schema)]).await?;
        let ns =
            client.query_opt("SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1::text", &[schema]).await?;
        let mut create_schema = ns.is_none();
        if ns.is_some() {
            let tables: Vec<String> = client
                .query(
                    "SELECT c.relname::text FROM pg_catalog.pg_class c
                       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = $1::text AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                    &[schema],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !tables.is_empty() {
                return check(client, settings, &tables).await;
            }
            create_schema = false;
        }
        let s = quote_ident(schema);
        if create_schema {
            client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}")).await?;
        }
        client.batch_execute(&ddl(&s)).await?;
        client.batch_execute(&ddl_v3_schedules(&s)).await?;
        client.batch_execute(&limits_ddl(&s)).await?;
        client.batch_execute(&v3_results(&s)).await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            client.batch_execute("COMMIT").await?;
            Ok(())
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// An existing store: jobq's marker, a version we understand, our tables.
async fn check(client: &Client, settings: &Settings, tables: &[String]) -> Result<(), Fail> {
    let schema = &settings.url.schema;
    let foreign = || {
        Fail::Core(Error::Corrupt(format!(
            "PostgreSQL at {}: schema {schema:?} holds tables that are not a jobq store ({}); \
             use another schema (the URL's schema parameter)",
            settings.target(),
            tables.join(", ")
        )))
    };
    if !tables.iter().any(|t| t == "meta") {
        return Err(foreign());
    }
    let s = quote_ident(schema);
    let rows = client
        .query(&format!("SELECT key::text, value::text FROM {s}.meta WHERE key IN ('store', 'version')"), &[])
        .await
        .map_err(|_| foreign())?;
    let get = |k: &str| rows.iter().find(|r| r.get::<_, String>(0) == k).map(|r| r.get::<_, String>(1));
    if get("store").as_deref() != Some(MARKER) {
        return Err(foreign());
    }
    let version = get("version").and_then(|v| v.trim().parse::<i64>().ok()).ok_or_else(|| {
        Fail::Core(Error::Corrupt(format!(
            "PostgreSQL at {}: jobq store {schema:?} without a schema version",
            settings.target()
        )))
    })?;
    if version > SCHEMA_VERSION {
        return Err(Fail::Core(Error::Version { found: version, supported: SCHEMA_VERSION }));
    }
    if version < 1 {
        return Err(Fail::Core(Error::Corrupt(format!(
            "PostgreSQL at {}: jobq store {schema:?} with schema version {version}",
            settings.target()
        ))));
    }
    for t in ["jobs", "queues"] {
        if !tables.iter().any(|x| x == t) {
            return Err(Fail::Core(Error::Corrupt(format!(
                "PostgreSQL at {}: jobq store {schema:?} lacks its table {t}",
                settings.target()
            ))));
        }
    }
    if version < SCHEMA_VERSION {
        upgrade(client, &s, version).await?;
    }
    Ok(())
}

/// Brings a store of an older schema version to `SCHEMA_VERSION`, inside
/// `prepare`'s transaction and advisory lock (concurrent opens wait, then
/// find the new version). Adding a column with a constant default rewrites
/// nothing; it waits for transactions of running clients that use the
/// `queues` table. Clients of an older jobq connected before keep working
/// (their statements are re-planned); new opens by an older jobq are
/// refused with `Version`.
async fn upgrade(client: &Client, s: &str, version: i64) -> Result<(), Fail> {
    if version < 2 {
        client
            .batch_execute(&format!("ALTER TABLE {s}.queues ADD COLUMN paused boolean NOT NULL DEFAULT false"))
            .await?;
    }
    // Schema v3: schedules, per-queue limits, done jobs and results.
    if version < 3 {
        client.batch_execute(&ddl_v3_schedules(s)).await?;
        client.batch_execute(&limits_ddl(s)).await?;
        client.batch_execute(&v3_results(s)).await?;
    }
    client.batch_execute(&format!("UPDATE {s}.meta SET value = '{SCHEMA_VERSION}' WHERE key = 'version'")).await?;
    Ok(())
}
