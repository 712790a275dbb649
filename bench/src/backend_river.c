/* backend_river.c - a River-style queue hand-written over libpq (our own SQL
 * from the description of River's design, no River code).
 *   schema qb_river (created and emptied in setup), one connection per thread,
 *   prepared statements, autocommit, synchronous_commit=on, one round trip per op:
 *   put : INSERT INTO jobs(queue, args) VALUES ($1, $2)
 *   take: WITH c AS MATERIALIZED (SELECT id FROM jobs WHERE state='available'
 *           AND queue=$1 ORDER BY priority, scheduled_at, id
 *           FOR UPDATE SKIP LOCKED LIMIT 1)
 *         UPDATE jobs SET state='running', attempt=attempt+1, attempted_at=now()
 *           FROM c WHERE jobs.id=c.id RETURNING jobs.id, jobs.args
 *         (nothing: sleep poll_us and try again until wait_ms)
 *   ack : DELETE FROM jobs WHERE id=$1
 * opts: url=..., poll_us=N (default 1000), schema=NAME (default qb_river)
 */
#include "pgcommon.h"
#include <inttypes.h>

static char rv_url[512];
static char rv_schema[512] = "qb_river";
static int rv_poll_us = 1000;

static int rv_setup(const char *dir, const char *opts) {
    (void)dir;
    char buf[512];
    snprintf(rv_url, sizeof rv_url, "%s", pgc_default_url());
    if (qb_opt(opts, "url", buf, sizeof buf) == 0) snprintf(rv_url, sizeof rv_url, "%s", buf);
    if (qb_opt(opts, "schema", buf, sizeof buf) == 0) snprintf(rv_schema, sizeof rv_schema, "%s", buf);
    if (qb_opt(opts, "poll_us", buf, sizeof buf) == 0) rv_poll_us = atoi(buf);
    PGconn *c = pgc_connect(rv_url);
    if (!c) return -1;
    char sql[4096];
    snprintf(sql, sizeof sql,
             "SET client_min_messages=warning;"
             "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s;"
             "CREATE TABLE %s.jobs ("
             " id bigserial PRIMARY KEY,"
             " state text NOT NULL DEFAULT 'available',"
             " queue text NOT NULL DEFAULT 'default',"
             " priority smallint NOT NULL DEFAULT 1,"
             " scheduled_at timestamptz NOT NULL DEFAULT now(),"
             " created_at timestamptz NOT NULL DEFAULT now(),"
             " attempt smallint NOT NULL DEFAULT 0,"
             " max_attempts smallint NOT NULL DEFAULT 25,"
             " attempted_at timestamptz,"
             " args bytea NOT NULL);"
             "CREATE INDEX jobs_prioritized_fetching ON %s.jobs (state, queue, priority, scheduled_at, id);",
             rv_schema, rv_schema, rv_schema, rv_schema);
    int rc = pgc_exec(c, sql);
    PQfinish(c);
    return rc;
}

static void *rv_open(void) {
    PGconn *c = pgc_connect(rv_url);
    if (!c) return NULL;
    char sql[1100];
    snprintf(sql, sizeof sql, "SET synchronous_commit=on; SET search_path=%s", rv_schema);
    if (pgc_exec(c, sql) ||
        pgc_prepare(c, "put", "INSERT INTO jobs(queue, args) VALUES ($1, $2)", 2) ||
        pgc_prepare(c, "take",
                    "WITH c AS MATERIALIZED (SELECT id FROM jobs WHERE state='available' AND queue=$1"
                    " ORDER BY priority, scheduled_at, id FOR UPDATE SKIP LOCKED LIMIT 1)"
                    " UPDATE jobs SET state='running', attempt=attempt+1, attempted_at=now()"
                    " FROM c WHERE jobs.id=c.id RETURNING jobs.id, jobs.args", 1) ||
        pgc_prepare(c, "ack", "DELETE FROM jobs WHERE id=$1", 1)) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

static int rv_put(void *h, const char *p, size_t len) {
    const char *vals[2] = {"default", p};
    int lens[2] = {0, (int)len};
    int fmts[2] = {0, 1};
    PGresult *r = PQexecPrepared(h, "put", 2, vals, lens, fmts, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "river put: %s", PQerrorMessage(h));
    PQclear(r);
    return ok ? 0 : -1;
}

static int rv_take(void *h, qb_job *job, int wait_ms) {
    uint64_t deadline = qb_now_ns() + (uint64_t)wait_ms * 1000000ull;
    const char *vals[1] = {"default"};
    for (;;) {
        PGresult *r = PQexecPrepared(h, "take", 1, vals, NULL, NULL, 1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "river take: %s", PQerrorMessage(h));
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
        qb_sleep_ns((uint64_t)rv_poll_us * 1000ull);
    }
}

static int rv_ack(void *h, qb_job *job) {
    char ids[32];
    snprintf(ids, sizeof ids, "%" PRIu64, job->id);
    const char *vals[1] = {ids};
    PGresult *r = PQexecPrepared(h, "ack", 1, vals, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdTuples(r), "1") == 0;
    if (!ok) fprintf(stderr, "river ack: %s", PQerrorMessage(h));
    PQclear(r);
    return ok ? 0 : -1;
}

static void rv_close(void *h) { PQfinish(h); }
static void rv_teardown(void) {}

const qb_backend qb_river = {"river", rv_setup, rv_open, rv_put, rv_take, rv_ack, rv_close, rv_teardown, NULL};
