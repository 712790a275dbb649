/* backend_jobq.c - jobq through its public C API only (include/jobq.h, the v1
 * contract):
 *   put      : jobq_put(q, queue, payload, len, NULL, NULL)
 *   put_batch: jobq_put_batch(q, queue, items, n, NULL, NULL)   (batch=N runs)
 *   take     : jobq_reserve(q, queue, wait_ms, &job), payload copied out
 *   ack      : jobq_ack(job), then jobq_job_free(job)
 *
 * Handles. By default (shared=1) there is ONE jobq handle per process: setup
 * opens it and every producer and consumer thread uses it. That is how an
 * application uses jobq (the handle is thread-safe and meant to be shared),
 * and it is what lets the library group-commit the writes of many threads
 * into one transaction and one fsync. shared=0 opens one handle per thread
 * instead, like the peers' one connection per thread, to show what sharing
 * buys. Either way the handle is opened before the clock starts.
 *
 * opts (comma-separated key=value):
 *   durability=full|normal   config "durability" (default full: a put returns
 *                            after fsync; normal: survives a process crash)
 *   shared=1|0               one handle per process (default) / per thread
 *   lease_ms=N               config "lease_ms" (default: the library's 30000)
 *   queue=NAME               queue name inside the file (default "bench")
 *   batch=N                  read by the driver: producers call put_batch
 *                            with N jobs instead of put
 *   loop=plain|ackres|many   how consumers take and ack (default plain):
 *                            ackres: jobq_ack_reserve (the ack of one job and
 *                            the lease of the next in one call); many: up to
 *                            many=N (default 16) jobs by jobq_reserve_many,
 *                            acked together by jobq_ack_many. Both defer the
 *                            driver's ack: ackres commits it with the next
 *                            take, many with the N-th ack or the next refill
 *                            (and close flushes what is left), so a job
 *                            counts as done a moment before its ack commits;
 *                            the rate over a whole run is not affected.
 *   url=URL                  open URL instead of DIR/jobq.db, e.g.
 *                            postgresql://postgres@127.0.0.1:5432/test?schema=NAME
 *                            (the PostgreSQL backend; compare-pg.sh)
 * The queue file is DIR/jobq.db, created by jobq_open in the fresh run dir.
 */
#include "qb.h"

#include <jobq.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    jobq *q;              /* the shared handle, or this thread's own (shared=0) */
    int own;              /* 1: q was opened for this conn and is closed with it */
    jobq_payload *items;  /* put_batch: the caller's items in jobq's struct */
    size_t cap;
    jobq_job *pending;    /* loop=ackres: the job whose ack goes with the next take */
    jobq_job **held;      /* loop=many: reserved, not yet given to the driver */
    size_t held_n, held_i;
    jobq_job **done;      /* loop=many: acked by the driver, not yet by jobq */
    size_t done_n;
} jq_conn;

enum { LOOP_PLAIN, LOOP_ACKRES, LOOP_MANY };
static int jq_loop = LOOP_PLAIN;
static size_t jq_many = 16;

static char jq_path[600];
static char jq_config[256];
static char jq_queue[64] = "bench";
static int jq_shared_mode = 1;
static jobq *jq_shared; /* shared=1: opened in setup, closed in teardown */

static void jq_report(const char *what, jobq_status rc) {
    fprintf(stderr, "jobq %s: %s (%d): %s\n", what, jobq_status_str((int)rc), (int)rc, jobq_last_error());
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out) {
    char *end;
    if (!*s || *s == '-') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v > max) return -1;
    *out = v;
    return 0;
}

static jobq *jq_open_handle(void) {
    jobq *q = NULL;
    jobq_status rc = jobq_open(jq_path, jq_config, &q);
    if (rc != JOBQ_OK) {
        jq_report("open", rc);
        return NULL;
    }
    return q;
}

static int jq_setup(const char *dir, const char *opts) {
    char v[64];
    const char *durability = "full";
    if (qb_opt(opts, "durability", v, sizeof v) == 0) {
        if (strcmp(v, "full") == 0) {
            durability = "full";
        } else if (strcmp(v, "normal") == 0) {
            durability = "normal";
        } else {
            fprintf(stderr, "jobq: durability=%s: want full or normal\n", v);
            return -1;
        }
    }
    if (qb_opt(opts, "shared", v, sizeof v) == 0) {
        if (strcmp(v, "1") != 0 && strcmp(v, "0") != 0) {
            fprintf(stderr, "jobq: shared=%s: want 1 or 0\n", v);
            return -1;
        }
        jq_shared_mode = v[0] == '1';
    }
    if (qb_opt(opts, "queue", v, sizeof v) == 0) {
        if (!v[0]) return -1;
        snprintf(jq_queue, sizeof jq_queue, "%s", v);
    }
    char lease[48] = "";
    if (qb_opt(opts, "lease_ms", v, sizeof v) == 0) {
        unsigned long long ms;
        if (parse_uint(v, 1000000000ull, &ms) != 0 || ms == 0) {
            fprintf(stderr, "jobq: lease_ms=%s: want a positive integer\n", v);
            return -1;
        }
        snprintf(lease, sizeof lease, ",\"lease_ms\":%llu", ms);
    }
    if (qb_opt(opts, "loop", v, sizeof v) == 0) {
        if (strcmp(v, "plain") == 0) {
            jq_loop = LOOP_PLAIN;
        } else if (strcmp(v, "ackres") == 0) {
            jq_loop = LOOP_ACKRES;
        } else if (strcmp(v, "many") == 0) {
            jq_loop = LOOP_MANY;
        } else {
            fprintf(stderr, "jobq: loop=%s: want plain, ackres or many\n", v);
            return -1;
        }
    }
    if (qb_opt(opts, "many", v, sizeof v) == 0) {
        unsigned long long n;
        if (parse_uint(v, JOBQ_RESERVE_MANY_MAX, &n) != 0 || n == 0) {
            fprintf(stderr, "jobq: many=%s: want 1..%d\n", v, JOBQ_RESERVE_MANY_MAX);
            return -1;
        }
        jq_many = (size_t)n;
    }
    snprintf(jq_config, sizeof jq_config, "{\"durability\":\"%s\"%s}", durability, lease);
    char url[sizeof jq_path];
    if (qb_opt(opts, "url", url, sizeof url) == 0 && url[0]) {
        snprintf(jq_path, sizeof jq_path, "%s", url);
    } else if ((size_t)snprintf(jq_path, sizeof jq_path, "%s/jobq.db", dir) >= sizeof jq_path) {
        return -1;
    }

    /* Open once here: creates the file and reports config errors before any
     * thread starts. shared=1 keeps this handle for all threads. */
    jobq *q = jq_open_handle();
    if (!q) return -1;
    if (jq_shared_mode) {
        jq_shared = q;
    } else {
        jobq_status rc = jobq_close(q);
        if (rc != JOBQ_OK) {
            jq_report("close", rc);
            return -1;
        }
    }
    return 0;
}

static void *jq_open(void) {
    jq_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (jq_shared_mode) {
        c->q = jq_shared;
    } else {
        c->q = jq_open_handle();
        c->own = 1;
    }
    if (c->q && jq_loop == LOOP_MANY) {
        c->held = calloc(jq_many, sizeof *c->held);
        c->done = calloc(jq_many, sizeof *c->done);
        if (!c->held || !c->done) {
            if (c->own) jobq_close(c->q);
            c->q = NULL;
        }
    }
    if (!c->q) {
        free(c->held);
        free(c->done);
        free(c);
        return NULL;
    }
    return c;
}

static int jq_put(void *vc, const char *p, size_t len) {
    jq_conn *c = vc;
    jobq_status rc = jobq_put(c->q, jq_queue, p, len, NULL, NULL);
    if (rc != JOBQ_OK) {
        jq_report("put", rc);
        return -1;
    }
    return 0;
}

static int jq_put_batch(void *vc, const qb_payload *items, size_t n) {
    jq_conn *c = vc;
    if (n > c->cap) {
        jobq_payload *grown = realloc(c->items, n * sizeof *grown);
        if (!grown) return -1;
        c->items = grown;
        c->cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        c->items[i].data = items[i].data;
        c->items[i].len = items[i].len;
    }
    jobq_status rc = jobq_put_batch(c->q, jq_queue, c->items, n, NULL, NULL);
    if (rc != JOBQ_OK) {
        jq_report("put_batch", rc);
        return -1;
    }
    return 0;
}

/* loop=many: ack what the driver acked, in one call. */
static int jq_flush_done(jq_conn *c) {
    int bad = 0;
    if (c->done_n == 0) return 0;
    jobq_status rc = jobq_ack_many(c->done, c->done_n, NULL);
    if (rc != JOBQ_OK) {
        jq_report("ack_many", rc);
        bad = 1;
    }
    for (size_t i = 0; i < c->done_n; i++) jobq_job_free(c->done[i]);
    c->done_n = 0;
    return bad ? -1 : 0;
}

/* The next delivery by the configured loop: 1 got one, 0 none, -1 error. */
static int jq_next(jq_conn *c, int wait_ms, jobq_job **out) {
    jobq_status rc;
    *out = NULL;
    if (jq_loop == LOOP_MANY) {
        if (c->held_i < c->held_n) {
            *out = c->held[c->held_i++];
            return 1;
        }
        if (jq_flush_done(c) != 0) return -1;
        c->held_n = c->held_i = 0;
        rc = jobq_reserve_many(c->q, jq_queue, jq_many, (int64_t)wait_ms, c->held, &c->held_n);
        if (rc == JOBQ_TIMEOUT) return 0;
        if (rc != JOBQ_OK || c->held_n == 0) {
            jq_report("reserve_many", rc);
            return -1;
        }
        *out = c->held[c->held_i++];
        return 1;
    }
    if (jq_loop == LOOP_ACKRES && c->pending) {
        jobq_job *prev = c->pending;
        c->pending = NULL;
        rc = jobq_ack_reserve(prev, jq_queue, (int64_t)wait_ms, out);
        jobq_job_free(prev);
        if (rc == JOBQ_TIMEOUT) return 0;
        if (rc != JOBQ_OK || !*out) {
            jq_report("ack_reserve", rc);
            return -1;
        }
        return 1;
    }
    rc = jobq_reserve(c->q, jq_queue, (int64_t)wait_ms, out);
    if (rc == JOBQ_TIMEOUT) return 0;
    if (rc != JOBQ_OK || !*out) {
        jq_report("reserve", rc);
        return -1;
    }
    return 1;
}

static int jq_take(void *vc, qb_job *job, int wait_ms) {
    jq_conn *c = vc;
    jobq_job *j = NULL;
    int got = jq_next(c, wait_ms, &j);
    if (got <= 0) return got;
    size_t len = 0;
    const uint8_t *p = jobq_job_payload(j, &len);
    if (!p || len > QB_MAX_PAYLOAD) { /* NULL only for an invalid job handle */
        fprintf(stderr, "jobq reserve: job %llu: bad payload (%zu bytes)\n", (unsigned long long)jobq_job_id(j), len);
        jobq_job_free(j);
        return -1;
    }
    if (len) memcpy(job->data, p, len);
    job->len = len;
    job->id = (uint64_t)(uintptr_t)j; /* the delivery itself; acked and freed in jq_ack */
    return 1;
}

static int jq_ack(void *vc, qb_job *job) {
    jq_conn *c = vc;
    jobq_job *j = (jobq_job *)(uintptr_t)job->id;
    job->id = 0;
    if (jq_loop == LOOP_ACKRES) {
        if (c->pending) { /* two acks without a take between: ack the older now */
            jobq_status rc = jobq_ack(c->pending);
            jobq_job_free(c->pending);
            if (rc != JOBQ_OK) jq_report("ack", rc);
        }
        c->pending = j;
        return 0;
    }
    if (jq_loop == LOOP_MANY) {
        c->done[c->done_n++] = j;
        return c->done_n == jq_many ? jq_flush_done(c) : 0;
    }
    jobq_status rc = jobq_ack(j);
    if (rc != JOBQ_OK) jq_report("ack", rc);
    jobq_job_free(j);
    return rc == JOBQ_OK ? 0 : -1;
}

static void jq_close(void *vc) {
    jq_conn *c = vc;
    if (!c) return;
    if (c->pending) {
        jobq_status rc = jobq_ack(c->pending);
        if (rc != JOBQ_OK) jq_report("ack", rc);
        jobq_job_free(c->pending);
        c->pending = NULL;
    }
    if (c->done) jq_flush_done(c);
    /* Leased ahead and never given to the driver: back to the queue. */
    for (; c->held && c->held_i < c->held_n; c->held_i++) {
        jobq_status rc = jobq_release(c->held[c->held_i], 0);
        if (rc != JOBQ_OK) jq_report("release", rc);
        jobq_job_free(c->held[c->held_i]);
    }
    free(c->held);
    free(c->done);
    if (c->own) {
        jobq_status rc = jobq_close(c->q);
        if (rc != JOBQ_OK) jq_report("close", rc);
    }
    free(c->items);
    free(c);
}

static void jq_teardown(void) {
    if (jq_shared) {
        jobq_status rc = jobq_close(jq_shared);
        if (rc != JOBQ_OK) jq_report("close", rc);
        jq_shared = NULL;
    }
}

const qb_backend qb_jobq = {"jobq", jq_setup, jq_open, jq_put, jq_take, jq_ack, jq_close, jq_teardown, jq_put_batch};
