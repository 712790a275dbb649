/* backend_pgmq.c - a pgmq-style queue hand-written over libpq (our own SQL
 * from the description of pgmq's design, no pgmq code).
 *   schema qb_pgmq (created and emptied in setup), table q(msg_id bigserial,
 *   read_ct, enqueued_at, vt, message bytea); one connection per thread,
 *   prepared statements, autocommit, synchronous_commit=on:
 *   put (send)  : INSERT INTO q(message) VALUES ($1)
 *   take (read) : UPDATE q SET vt = now() + interval '30 seconds', read_ct = read_ct+1
 *                 WHERE msg_id = (SELECT msg_id FROM q WHERE vt <= now()
 *                   ORDER BY msg_id FOR UPDATE SKIP LOCKED LIMIT 1)
 *                 RETURNING msg_id, message
 *                 (nothing: sleep poll_us and try again until wait_ms)
 *   ack (delete): DELETE FROM q WHERE msg_id=$1
 * opts: url=..., poll_us=N (default 1000), schema=NAME (default qb_pgmq), vt_s=N (30)
 */
#include "pgcommon.h"
#include <inttypes.h>

static char mq_url[512];
static char mq_schema[512] = "qb_pgmq";
static int mq_poll_us = 1000, mq_vt_s = 30;

static int mq_setup(const char *dir, const char *opts) {
    (void)dir;
    char buf[512];
    snprintf(mq_url, sizeof mq_url, "%s", pgc_default_url());
    if (qb_opt(opts, "url", buf, sizeof buf) == 0) snprintf(mq_url, sizeof mq_url, "%s", buf);
    if (qb_opt(opts, "schema", buf, sizeof buf) == 0) snprintf(mq_schema, sizeof mq_schema, "%s", buf);
    if (qb_opt(opts, "poll_us", buf, sizeof buf) == 0) mq_poll_us = atoi(buf);
    if (qb_opt(opts, "vt_s", buf, sizeof buf) == 0) mq_vt_s = atoi(buf);
    PGconn *c = pgc_connect(mq_url);
    if (!c) return -1;
    char sql[4096];
    snprintf(sql, sizeof sql,
             "SET client_min_messages=warning;"
             "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s;"
             "CREATE TABLE %s.q ("
             " msg_id bigserial PRIMARY KEY,"
             " read_ct int NOT NULL DEFAULT 0,"
             " enqueued_at timestamptz NOT NULL DEFAULT now(),"
             " vt timestamptz NOT NULL DEFAULT now(),"
             " message bytea NOT NULL);"
             "CREATE INDEX q_vt_idx ON %s.q (vt);",
             mq_schema, mq_schema, mq_schema, mq_schema);
    int rc = pgc_exec(c, sql);
    PQfinish(c);
    return rc;
}

static void *mq_open(void) {
    PGconn *c = pgc_connect(mq_url);
    if (!c) return NULL;
    char sql[1100], rd[1024];
    snprintf(sql, sizeof sql, "SET synchronous_commit=on; SET search_path=%s", mq_schema);
    snprintf(rd, sizeof rd,
             "UPDATE q SET vt = now() + interval '%d seconds', read_ct = read_ct + 1"
             " WHERE msg_id = (SELECT msg_id FROM q WHERE vt <= now()"
             " ORDER BY msg_id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING msg_id, message",
             mq_vt_s);
    if (pgc_exec(c, sql) ||
        pgc_prepare(c, "send", "INSERT INTO q(message) VALUES ($1)", 1) ||
        pgc_prepare(c, "read", rd, 0) ||
        pgc_prepare(c, "del", "DELETE FROM q WHERE msg_id=$1", 1)) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

static int mq_put(void *h, const char *p, size_t len) {
    const char *vals[1] = {p};
    int lens[1] = {(int)len};
    int fmts[1] = {1};
    PGresult *r = PQexecPrepared(h, "send", 1, vals, lens, fmts, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "pgmq send: %s", PQerrorMessage(h));
    PQclear(r);
    return ok ? 0 : -1;
}

static int mq_take(void *h, qb_job *job, int wait_ms) {
    uint64_t deadline = qb_now_ns() + (uint64_t)wait_ms * 1000000ull;
    for (;;) {
        PGresult *r = PQexecPrepared(h, "read", 0, NULL, NULL, NULL, 1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "pgmq read: %s", PQerrorMessage(h));
            PQclear(r);
            return -1;
        }
        if (PQntuples(r) == 1) {
            const unsigned char *idb = (const unsigned char *)PQgetvalue(r, 0, 0);
            uint64_t id = 0;
            for (int i = 0; i < 8; i++) id = (id << 8) | idb[i];
            size_t n = (size_t)PQgetlength(r, 0, 1);
            if (n > QB_MAX_PAYLOAD) n = QB_MAX_PAYLOAD;
            memcpy(job->data, PQgetvalue(r, 0, 1), n);
            job->len = n;
            job->id = id;
            PQclear(r);
            return 1;
        }
        PQclear(r);
        if (qb_now_ns() >= deadline) return 0;
        qb_sleep_ns((uint64_t)mq_poll_us * 1000ull);
    }
}

static int mq_ack(void *h, qb_job *job) {
    char ids[32];
    snprintf(ids, sizeof ids, "%" PRIu64, job->id);
    const char *vals[1] = {ids};
    PGresult *r = PQexecPrepared(h, "del", 1, vals, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdTuples(r), "1") == 0;
    if (!ok) fprintf(stderr, "pgmq delete: %s", PQerrorMessage(h));
    PQclear(r);
    return ok ? 0 : -1;
}

static void mq_close(void *h) { PQfinish(h); }
static void mq_teardown(void) {}

const qb_backend qb_pgmq = {"pgmq", mq_setup, mq_open, mq_put, mq_take, mq_ack, mq_close, mq_teardown, NULL};
