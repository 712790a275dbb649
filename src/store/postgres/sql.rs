//! The statements. Every connection runs with `search_path` set to the
//! store's schema, so the tables are named plainly here and each statement
//! is prepared once per connection (`pool::Conn::prep`). Parameters carry
//! explicit casts so that their types do not depend on inference.
//!
//! Stored states, as in the SQLite backend: 0 pending, 1 reserved, 2 dead,
//! 3 scheduled, 4 done (`run_at`: its expiry). Unlike SQLite, a reserved job's lease deadline is
//! `lease_until` only (`run_at` keeps its last value): `lease_until` is in
//! no index, so a touch is a HOT update.

/// The contract's states as conditions on a row at time `$1` (now): the
/// one definition used by the stats, the listing and purge.
pub(crate) const IS_READY: &str = "(state = 0 OR (state = 3 AND run_at <= $1::int8)
    OR (state = 1 AND lease_until <= $1::int8 AND attempts < max_attempts))";
pub(crate) const IS_SCHEDULED: &str = "(state = 3 AND run_at > $1::int8)";
pub(crate) const IS_RESERVED: &str = "(state = 1 AND lease_until > $1::int8)";
pub(crate) const IS_DEAD: &str = "(state = 2 OR (state = 1 AND lease_until <= $1::int8 AND attempts >= max_attempts))";
/// Done and not expired (an expired done job is gone, pruned or not).
pub(crate) const IS_DONE: &str = "(state = 4 AND run_at > $1::int8)";
/// Rows that no longer exist for the caller: done jobs past their expiry.
pub(crate) const IS_GONE: &str = "(state = 4 AND run_at <= $1::int8)";

/// 0 ready, 1 scheduled, 2 reserved, 3 dead, 4 done at time `$1`.
pub(crate) const EFFECTIVE_STATE: &str = "CASE
    WHEN state = 4 THEN 4
    WHEN state = 0 OR (state = 3 AND run_at <= $1::int8)
        OR (state = 1 AND lease_until <= $1::int8 AND attempts < max_attempts) THEN 0
    WHEN state = 3 THEN 1
    WHEN state = 1 AND lease_until > $1::int8 THEN 2
    ELSE 3 END";

/// $1 queue, $2 now.
pub(crate) const ADD_QUEUE: &str =
    "INSERT INTO queues (name, created_at) VALUES ($1::text, $2::int8) ON CONFLICT (name) DO NOTHING";

/// $1 queue, $2 state, $3 priority, $4 run_at, $5 max_attempts, $6 lease_ms, $7 payload, $8 now.
pub(crate) const INSERT: &str =
    "INSERT INTO jobs (queue, state, priority, run_at, max_attempts, lease_ms, payload, created_at, updated_at)
     VALUES ($1::text, $2::int2, $3::int4, $4::int8, $5::int8, $6::int8, $7::bytea, $8::int8, $8::int8)
     RETURNING id";

/// A lease that expired on its last allowed attempt frees its unique key
/// (the job is dead): applied to the key's holder before a keyed put.
/// $1 queue, $2 key, $3 now.
pub(crate) const EXPIRE_KEY_HOLDER: &str = "UPDATE jobs SET state = 2,
        last_error = 'lease expired on the last allowed attempt (' || attempts || ')',
        run_at = $3::int8, lease_until = NULL, lease_owner = NULL, updated_at = $3::int8
     WHERE queue = $1::text AND unique_key = $2::text AND state = 1
       AND lease_until <= $3::int8 AND attempts >= max_attempts";

/// A keyed put: the new id and true, or the live holder's id and false,
/// or no row when the holder committed after this statement's snapshot
/// (then `LIVE_KEY` finds it). Parameters as `INSERT`, $9 the key.
pub(crate) const INSERT_UNIQUE: &str = "WITH ins AS (
        INSERT INTO jobs (queue, state, priority, run_at, max_attempts, lease_ms, payload, created_at,
                          updated_at, unique_key)
        SELECT $1::text, $2::int2, $3::int4, $4::int8, $5::int8, $6::int8, $7::bytea, $8::int8, $8::int8, $9::text
        -- No id is drawn when a live job holds the key (ids follow puts, as in a file).
        WHERE NOT EXISTS (SELECT 1 FROM jobs
                          WHERE queue = $1::text AND unique_key = $9::text AND state IN (0, 1, 3))
        ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL AND state IN (0, 1, 3) DO NOTHING
        RETURNING id)
     SELECT id, true FROM ins
     UNION ALL
     SELECT id, false FROM jobs
      WHERE queue = $1::text AND unique_key = $9::text AND state IN (0, 1, 3) AND NOT EXISTS (SELECT 1 FROM ins)";

/// $1 queue, $2 key.
pub(crate) const LIVE_KEY: &str =
    "SELECT id FROM jobs WHERE queue = $1::text AND unique_key = $2::text AND state IN (0, 1, 3)";

/// One multi-row insert for a batch. $1 queue, $2 state, $3 priority,
/// $4 run_at, $5 max_attempts, $6 lease_ms, $7 payloads, $8 now.
pub(crate) const INSERT_MANY: &str =
    "INSERT INTO jobs (queue, state, priority, run_at, max_attempts, lease_ms, payload, created_at, updated_at)
     SELECT $1::text, $2::int2, $3::int4, $4::int8, $5::int8, $6::int8, p, $8::int8, $8::int8
       FROM unnest($7::bytea[]) WITH ORDINALITY AS t(p, n) ORDER BY n
     RETURNING id";

/// Makes due rows of a queue ready: delays that passed, and expired leases
/// (an attempt was counted; on the last one the job goes dead). Rows being
/// changed by someone else are left to them. $1 queue, $2 now.
pub(crate) const PROMOTE_DUE: &str = "WITH s AS (
        UPDATE jobs SET state = 0
         WHERE id IN (SELECT id FROM jobs WHERE queue = $1::text AND state = 3 AND run_at <= $2::int8
                      FOR UPDATE SKIP LOCKED)
           AND state = 3
        RETURNING 1),
     e AS (
        UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 2 ELSE 0 END,
            last_error = CASE WHEN attempts >= max_attempts
                THEN 'lease expired on the last allowed attempt (' || attempts || ')'
                ELSE 'lease expired' END,
            run_at = $2::int8, lease_until = NULL, lease_owner = NULL, updated_at = $2::int8
         WHERE id IN (SELECT id FROM jobs WHERE queue = $1::text AND state = 1 AND lease_until <= $2::int8
                      FOR UPDATE SKIP LOCKED)
           AND state = 1
        RETURNING 1)
     SELECT (SELECT count(*) FROM s) + (SELECT count(*) FROM e)";

/// Leases up to $3 ready jobs of queue $1 at time $2 for owner $4; none
/// while the queue is paused (read by this statement's snapshot: a pause
/// that committed before it holds for every client; an uncorrelated
/// subquery, run once as an InitPlan), nor when the queue has limits (its
/// claims go through `LOCK_LIMITS` and `CLAIM_LIMITED`; `NEXT_DUE` tells).
pub(crate) const CLAIM: &str = "WITH c AS MATERIALIZED (
        SELECT id FROM jobs WHERE queue = $1::text AND state = 0
           AND NOT EXISTS (SELECT 1 FROM queues WHERE name = $1::text AND paused)
           AND NOT EXISTS (SELECT 1 FROM queue_limits WHERE queue = $1::text)
         ORDER BY priority, id LIMIT $3::int8 FOR UPDATE SKIP LOCKED)
     UPDATE jobs SET state = 1, attempts = attempts + 1, lease_token = lease_token + 1,
            lease_until = $2::int8 + lease_ms, lease_owner = $4::int8, updated_at = $2::int8
       FROM c WHERE jobs.id = c.id
     RETURNING jobs.id, jobs.priority, jobs.attempts, jobs.lease_token, jobs.lease_ms, jobs.payload";

/// The limits of queue $1, its row locked until the claim's transaction
/// ends: claims of a limited queue take turns, each counting (in the next
/// statement, whose snapshot is taken after the lock) what the one before
/// it leased. No row: no limits (and nothing locked).
pub(crate) const LOCK_LIMITS: &str = "SELECT max_reserved, rate_jobs, rate_per_ms, window_start, window_count
       FROM queue_limits WHERE queue = $1::text FOR UPDATE";

/// Jobs of queue $1 reserved with a live lease at time $2.
pub(crate) const RESERVED_NOW: &str =
    "SELECT count(*) FROM jobs WHERE queue = $1::text AND state = 1 AND lease_until > $2::int8";

/// `CLAIM` for a limited queue whose row `LOCK_LIMITS` holds: $3 is what
/// the limits allow; counts the deliveries in the rate window ($5: the
/// window ended, this claim opens a new one at $2).
pub(crate) const CLAIM_LIMITED: &str = "WITH c AS MATERIALIZED (
        SELECT id FROM jobs WHERE queue = $1::text AND state = 0
           AND NOT EXISTS (SELECT 1 FROM queues WHERE name = $1::text AND paused)
         ORDER BY priority, id LIMIT $3::int8 FOR UPDATE SKIP LOCKED),
     u AS (
        UPDATE jobs SET state = 1, attempts = attempts + 1, lease_token = lease_token + 1,
               lease_until = $2::int8 + lease_ms, lease_owner = $4::int8, updated_at = $2::int8
          FROM c WHERE jobs.id = c.id
        RETURNING jobs.id, jobs.priority, jobs.attempts, jobs.lease_token, jobs.lease_ms, jobs.payload),
     w AS (
        UPDATE queue_limits SET window_start = CASE WHEN $5::bool THEN $2::int8 ELSE window_start END,
               window_count = CASE WHEN $5::bool THEN 0 ELSE window_count END + (SELECT count(*) FROM u)
         WHERE queue = $1::text AND rate_per_ms IS NOT NULL AND EXISTS (SELECT 1 FROM u)
        RETURNING 1)
     SELECT id, priority, attempts, lease_token, lease_ms, payload FROM u";

/// Applies a change to the limits of queue $1: $2 whether to set
/// max_reserved to $3 (NULL: none), $4 whether to set the rate to $5 jobs
/// per $6 ms (NULL: none; a removed rate forgets its window). Then
/// `DROP_EMPTY_LIMITS` and `RECORD_LIMITED`, in one transaction.
pub(crate) const UPSERT_LIMITS: &str = "INSERT INTO queue_limits (queue, max_reserved, rate_jobs, rate_per_ms)
     VALUES ($1::text, CASE WHEN $2::bool THEN $3::int8 END, CASE WHEN $4::bool THEN $5::int8 END,
             CASE WHEN $4::bool THEN $6::int8 END)
     ON CONFLICT (queue) DO UPDATE SET
        max_reserved = CASE WHEN $2::bool THEN $3::int8 ELSE queue_limits.max_reserved END,
        rate_jobs = CASE WHEN $4::bool THEN $5::int8 ELSE queue_limits.rate_jobs END,
        rate_per_ms = CASE WHEN $4::bool THEN $6::int8 ELSE queue_limits.rate_per_ms END,
        window_start = CASE WHEN $4::bool AND $5::int8 IS NULL THEN 0 ELSE queue_limits.window_start END,
        window_count = CASE WHEN $4::bool AND $5::int8 IS NULL THEN 0 ELSE queue_limits.window_count END";

/// A queue left without limits keeps no row. $1 queue.
pub(crate) const DROP_EMPTY_LIMITS: &str =
    "DELETE FROM queue_limits WHERE queue = $1::text AND max_reserved IS NULL AND rate_jobs IS NULL";

/// A queue given limits is recorded (stats list it). $1 queue, $2 now.
pub(crate) const RECORD_LIMITED: &str = "INSERT INTO queues (name, created_at)
     SELECT $1::text, $2::int8 WHERE EXISTS (SELECT 1 FROM queue_limits WHERE queue = $1::text)
     ON CONFLICT (name) DO NOTHING";

/// Every limited queue's limits.
pub(crate) const ALL_LIMITS: &str =
    "SELECT queue, max_reserved, rate_jobs, rate_per_ms, window_start, window_count FROM queue_limits";

/// When something of queue $1 next becomes due by time alone, and the
/// queue's limits (`LOCK_LIMITS`'s columns, then whether it has any).
pub(crate) const NEXT_DUE: &str = "SELECT least(
        (SELECT min(run_at) FROM jobs WHERE queue = $1::text AND state = 3),
        (SELECT min(lease_until) FROM jobs WHERE queue = $1::text AND state = 1)),
        l.max_reserved, l.rate_jobs, l.rate_per_ms, l.window_start, l.window_count, l.queue IS NOT NULL
       FROM (SELECT 1) AS one LEFT JOIN queue_limits l ON l.queue = $1::text";

/// Reclaims the reserved jobs of queue $1 whose owner (a handle's session
/// advisory lock on its owner id) is held by no session any more: same
/// transitions as an expired lease. Answers (jobs reclaimed, live owners
/// other than $3 holding leases). $2 now.
pub(crate) const RECLAIM_DEAD_OWNERS: &str = "WITH holders AS (
        SELECT DISTINCT lease_owner AS o FROM jobs
         WHERE queue = $1::text AND state = 1 AND lease_owner IS NOT NULL AND lease_owner <> $3::int8),
     gone AS (
        SELECT o FROM holders h WHERE NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_locks l
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
               AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
               AND ((l.classid::int8 << 32) | l.objid::int8) = h.o)),
     r AS (
        UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 2 ELSE 0 END,
            last_error = 'the client holding the job (owner ' || lease_owner || ') disconnected during attempt '
                || attempts || CASE WHEN attempts >= max_attempts THEN ', the last allowed attempt' ELSE '' END,
            run_at = $2::int8, lease_until = NULL, lease_owner = NULL, updated_at = $2::int8
         WHERE queue = $1::text AND state = 1 AND lease_owner IN (SELECT o FROM gone)
        RETURNING 1)
     SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM holders) - (SELECT count(*) FROM gone)";

// Finishes. The conditions are those of the SQLite backend's `finish`: the
// token decides whether the delivery is current; a dead job (buried, or its
// lease expired on its last attempt) cannot be revived by fail, release or
// touch. Each answers the job's queue (for wakeups).

/// Batched acks: $1 ids, $2 tokens; answers the (id, token) pairs deleted
/// and their queues (an ack of a limited queue wakes its waiters).
/// A done job (kept by an earlier ack of the delivery) is finished: stale.
pub(crate) const ACK_MANY: &str = "DELETE FROM jobs USING unnest($1::int8[], $2::int8[]) AS f(id, token)
     WHERE jobs.id = f.id AND jobs.lease_token = f.token AND jobs.state <> 4
     RETURNING jobs.id, jobs.lease_token, jobs.queue";

/// An ack that keeps the job (keep_done_ms): like the DELETE of `ACK_MANY`,
/// but the row stays, done, until its expiry in `run_at`; a second ack of
/// the delivery finds it done (stale). $1 id, $2 token, $3 expiry, $4 now,
/// $5 result.
pub(crate) const ACK_KEEP: &str = "UPDATE jobs SET state = 4, run_at = $3::int8, result = $5::bytea,
        lease_until = NULL, lease_owner = NULL, updated_at = $4::int8
     WHERE id = $1::int8 AND lease_token = $2::int8 AND state <> 4
     RETURNING queue";

/// Deletes up to $2 done jobs whose expiry passed by $1, oldest first;
/// rows another client is pruning are left to it.
pub(crate) const PRUNE_DONE: &str = "DELETE FROM jobs WHERE state = 4 AND id IN
        (SELECT id FROM jobs WHERE state = 4 AND run_at <= $1::int8 ORDER BY run_at LIMIT $2::int8
         FOR UPDATE SKIP LOCKED)";

/// $1 id, $2 token, $3 retry at, $4 now, $5 reason.
pub(crate) const FAIL: &str = "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 2 ELSE 3 END,
        run_at = CASE WHEN attempts >= max_attempts THEN $4::int8 ELSE $3::int8 END,
        last_error = $5::text, lease_until = NULL, lease_owner = NULL, updated_at = $4::int8
     WHERE id = $1::int8 AND lease_token = $2::int8
       AND state <> 2 AND NOT (state = 1 AND lease_until <= $4::int8 AND attempts >= max_attempts)
     RETURNING queue";

/// $1 id, $2 token, $3 delay, $4 now, $5 new priority (NULL: kept).
pub(crate) const RELEASE: &str = "UPDATE jobs SET state = CASE WHEN $3::int8 > 0 THEN 3 ELSE 0 END,
        run_at = $4::int8 + $3::int8, attempts = greatest(attempts - 1, 0),
        lease_until = NULL, lease_owner = NULL, updated_at = $4::int8,
        priority = coalesce($5::int4, priority)
     WHERE id = $1::int8 AND lease_token = $2::int8
       AND state <> 2 AND NOT (state = 1 AND lease_until <= $4::int8 AND attempts >= max_attempts)
     RETURNING queue";

/// $1 id, $2 token, $3 lease (0: the job's), $4 now, $5 owner. Changes no
/// indexed column of a reserved row: a HOT update.
pub(crate) const TOUCH: &str = "UPDATE jobs SET state = 1,
        lease_until = $4::int8 + CASE WHEN $3::int8 > 0 THEN $3::int8 ELSE lease_ms END,
        lease_owner = coalesce(lease_owner, $5::int8), updated_at = $4::int8
     WHERE id = $1::int8 AND lease_token = $2::int8
       AND state <> 2 AND NOT (state = 1 AND lease_until <= $4::int8 AND attempts >= max_attempts)
     RETURNING queue";

/// $1 id, $2 token, $3 now, $4 reason, $5 new priority (NULL: kept).
pub(crate) const BURY: &str = "UPDATE jobs SET state = 2, run_at = $3::int8, last_error = $4::text,
        lease_until = NULL, lease_owner = NULL, updated_at = $3::int8, priority = coalesce($5::int4, priority)
     WHERE id = $1::int8 AND lease_token = $2::int8
     RETURNING queue";

/// Dead -> ready for up to $2 dead jobs of queue $1, oldest first, attempts
/// reset, at time $3. A dead job whose unique key a live job holds stays
/// dead, and of several dead jobs with one key only the oldest is revived.
pub(crate) const KICK: &str = "WITH cand AS (
        SELECT id, unique_key, row_number() OVER (PARTITION BY unique_key ORDER BY id) AS rn
          FROM jobs j
         WHERE queue = $1::text AND state = 2
           AND (unique_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM jobs l WHERE l.queue = $1::text AND l.unique_key = j.unique_key
                   AND l.state IN (0, 1, 3)))),
     pick AS (SELECT id FROM cand WHERE unique_key IS NULL OR rn = 1 ORDER BY id LIMIT $2::int8)
     UPDATE jobs SET state = 0, attempts = 0, run_at = $3::int8, updated_at = $3::int8
       FROM pick WHERE jobs.id = pick.id AND jobs.state = 2";

/// Job $1 -> ready at time $2 if it is dead (attempts reset, as `KICK`)
/// or scheduled with its time still to come (attempts kept); answers its
/// queue. A dead job whose unique key a live job holds fails the unique
/// index (the caller answers `State`).
pub(crate) const KICK_JOB: &str = "UPDATE jobs SET state = 0,
        attempts = CASE WHEN state = 2 OR (state = 1 AND lease_until <= $2::int8 AND attempts >= max_attempts)
            THEN 0 ELSE attempts END,
        run_at = $2::int8, lease_until = NULL, lease_owner = NULL, updated_at = $2::int8
     WHERE id = $1::int8
       AND (state = 2 OR (state = 1 AND lease_until <= $2::int8 AND attempts >= max_attempts)
            OR (state = 3 AND run_at > $2::int8))
     RETURNING queue";

/// The ready candidates of queue `q` (an expression) at time $1, as
/// (priority, id): the head of the ready index, plus due rows not yet
/// promoted (passed delays, expired leases that are not the last allowed
/// attempt), which a reserve promotes first.
fn ready_candidates(q: &str) -> String {
    format!(
        "(SELECT priority, id FROM jobs WHERE queue = {q} AND state = 0 ORDER BY priority, id LIMIT 1)
         UNION ALL (SELECT priority, id FROM jobs WHERE queue = {q} AND state = 3 AND run_at <= $1::int8)
         UNION ALL (SELECT priority, id FROM jobs
                     WHERE queue = {q} AND state = 1 AND lease_until <= $1::int8 AND attempts < max_attempts)"
    )
}

/// The ready head (`Store::ready_heads`) of each queue of $2 at time $1:
/// (1-based position in $2, priority, id), for the queues that have one.
pub(crate) fn ready_heads() -> String {
    format!(
        "SELECT l.n, h.priority, h.id FROM unnest($2::text[]) WITH ORDINALITY AS l(name, n)
         CROSS JOIN LATERAL (SELECT priority, id FROM ({}) c ORDER BY priority, id LIMIT 1) h",
        ready_candidates("l.name")
    )
}

/// The first job of queue $2 in `state` at time $1 (`Store::peek`), with
/// the listing's columns; `None` for the states that have no peek.
pub(crate) fn peek(state: crate::store::JobState) -> Option<String> {
    use crate::store::JobState;
    let id = match state {
        JobState::Ready => {
            format!("SELECT id FROM ({}) c ORDER BY priority, id LIMIT 1", ready_candidates("$2::text"))
        }
        JobState::Scheduled => "SELECT id FROM jobs WHERE queue = $2::text AND state = 3 AND run_at > $1::int8
             ORDER BY run_at, id LIMIT 1"
            .to_owned(),
        // A dead row's run_at is when it died; an expired last lease died
        // when its lease ended.
        JobState::Dead => "SELECT id FROM jobs WHERE queue = $2::text
                AND (state = 2 OR (state = 1 AND lease_until <= $1::int8 AND attempts >= max_attempts))
              ORDER BY CASE WHEN state = 1 THEN lease_until ELSE run_at END, id LIMIT 1"
            .to_owned(),
        JobState::Reserved | JobState::Done => return None,
    };
    Some(format!("{} WHERE id = ({id})", select_jobs(None)))
}

/// $1 id, $2 now: removes the job unless it is reserved with a live lease.
pub(crate) const CANCEL: &str =
    "DELETE FROM jobs WHERE id = $1::int8 AND NOT (state = 1 AND lease_until > $2::int8) RETURNING 1";

/// $1 id.
pub(crate) const EXISTS: &str = "SELECT 1 FROM jobs WHERE id = $1::int8";

pub(crate) const QUEUE_NAMES: &str = "SELECT name, paused FROM queues";

/// Pauses queue $1, recording it (at time $2) if new.
pub(crate) const PAUSE: &str = "INSERT INTO queues (name, created_at, paused) VALUES ($1::text, $2::int8, true)
     ON CONFLICT (name) DO UPDATE SET paused = true";

/// Resumes queue $1 (a queue never recorded stays so).
pub(crate) const RESUME: &str = "UPDATE queues SET paused = false WHERE name = $1::text";

/// The largest id the identity has given out (NULL before the first).
pub(crate) const LAST_ID: &str = "SELECT pg_catalog.pg_sequence_last_value(
        pg_catalog.pg_get_serial_sequence(pg_catalog.quote_ident(current_schema()) || '.jobs', 'id')::regclass)";

/// Counts per queue at time `$1`.
pub(crate) fn counts() -> String {
    format!(
        "SELECT queue, count(*) FILTER (WHERE {IS_READY}), count(*) FILTER (WHERE {IS_SCHEDULED}),
                count(*) FILTER (WHERE {IS_RESERVED}), count(*) FILTER (WHERE {IS_DEAD}),
                count(*) FILTER (WHERE {IS_DONE})
           FROM jobs GROUP BY queue"
    )
}

/// The listing's columns, the payload cut to `payload_max` bytes; `$1` is now.
pub(crate) fn select_jobs(payload_max: Option<u64>) -> String {
    let (payload, result) = match payload_max {
        Some(n) => {
            let n = n.min(i32::MAX as u64);
            (format!("substring(payload FROM 1 FOR {n})"), format!("substring(result FROM 1 FOR {n})"))
        }
        None => ("payload".to_owned(), "result".to_owned()),
    };
    format!(
        "SELECT id, queue, {EFFECTIVE_STATE}, priority, attempts, max_attempts,
                CASE WHEN state = 1 THEN lease_until ELSE run_at END, lease_ms, lease_until, lease_owner,
                unique_key, {payload}, octet_length(payload), created_at, updated_at, last_error, {result}
           FROM jobs"
    )
}

/// Deletes the jobs of queue `$2` dead at time `$1`.
pub(crate) fn purge_dead() -> String {
    format!("DELETE FROM jobs WHERE queue = $2::text AND {IS_DEAD}")
}

// Schedules (schema version 3).

/// Stores a schedule, replacing the one of its name. $1 name, $2 queue,
/// $3 spec, $4 payload, $5 priority, $6 delay_ms, $7 max_attempts,
/// $8 lease_ms, $9 next_slot, $10 now.
pub(crate) const PUT_SCHEDULE: &str = "INSERT INTO schedules (name, queue, spec, payload, priority, delay_ms,
        max_attempts, lease_ms, next_slot, created_at, updated_at)
     VALUES ($1::text, $2::text, $3::text, $4::bytea, $5::int4, $6::int8, $7::int8, $8::int8, $9::int8,
             $10::int8, $10::int8)
     ON CONFLICT (name) DO UPDATE SET queue = excluded.queue, spec = excluded.spec, payload = excluded.payload,
        priority = excluded.priority, delay_ms = excluded.delay_ms, max_attempts = excluded.max_attempts,
        lease_ms = excluded.lease_ms, next_slot = excluded.next_slot, updated_at = excluded.updated_at";

/// $1 name.
pub(crate) const REMOVE_SCHEDULE: &str = "DELETE FROM schedules WHERE name = $1::text";

pub(crate) const LIST_SCHEDULES: &str = "SELECT name, queue, spec, next_slot, priority, delay_ms, max_attempts,
        lease_ms, octet_length(payload)
     FROM schedules ORDER BY name COLLATE \"C\"";

pub(crate) const NEXT_SCHEDULE: &str = "SELECT min(next_slot) FROM schedules";

/// The schedules due at $1, locked; rows another client is firing are
/// skipped (it puts their jobs).
pub(crate) const DUE_SCHEDULES: &str = "SELECT name, spec, next_slot FROM schedules
     WHERE next_slot <= $1::int8 ORDER BY next_slot, name FOR UPDATE SKIP LOCKED";

/// The compare-and-set of a fire: $1 new slot, $2 now, $3 name, $4 the slot read.
/// Answers the job's fields when it moved the slot.
pub(crate) const ADVANCE_SCHEDULE: &str = "UPDATE schedules SET next_slot = $1::int8, updated_at = $2::int8
     WHERE name = $3::text AND next_slot = $4::int8
     RETURNING queue, priority, delay_ms, max_attempts, lease_ms, payload";
