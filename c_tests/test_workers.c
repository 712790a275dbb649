/* Worker pools: the handler sees a valid job, outcomes are stored (DONE,
 * RETRY, BURY, and any other value as RETRY), `concurrency` handlers run at
 * once, leases are renewed during long handlers, and jobq_worker_stop waits
 * (JOBQ_OK) or gives up (JOBQ_TIMEOUT). */
#include <pthread.h>

#include "testutil.h"

/* The file's lease stays long (30 s) so a slow run (valgrind) never loses
 * a lease by accident; the renewal test gives its job a short one. */
static const char *CFG =
    "{\"durability\":\"normal\",\"backoff_base_ms\":20,"
    "\"backoff_max_ms\":100,\"backoff_jitter\":0}";

#define MAX_JOBS 64

struct ctx {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int delivered;
  int in_flight;
  int max_in_flight;
  int started;
  int returned;
  int gate_open;
  int bad_job; /* a handler saw a job whose accessors were wrong */
  long sleep_ms;
  const char *queue;
  int deliveries[MAX_JOBS];     /* per "job-<n>" payload */
  uint32_t last_attempt[MAX_JOBS];
};

static void ctx_init(struct ctx *c, const char *queue) {
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  c->queue = queue;
}

static void ctx_destroy(struct ctx *c) {
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
}

/* Waits (up to timeout_ms) until *field >= want; returns *field. */
static int ctx_wait(struct ctx *c, const int *field, int want,
                    int64_t timeout_ms) {
  int64_t deadline = tu_now_ms() + timeout_ms;
  int v;
  pthread_mutex_lock(&c->mu);
  while (*field < want && tu_now_ms() < deadline) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 10 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
  }
  v = *field;
  pthread_mutex_unlock(&c->mu);
  return v;
}

/* The job index from a "job-<n>" payload, or -1 (payloads are not
 * NUL-terminated, so copy first). */
static int job_index(const jobq_job *job) {
  size_t len = 0;
  const uint8_t *data = jobq_job_payload(job, &len);
  char buf[32];
  int n = -1;
  if (data == NULL || len == 0 || len >= sizeof buf) {
    return -1;
  }
  memcpy(buf, data, len);
  buf[len] = '\0';
  if (sscanf(buf, "job-%d", &n) != 1 || n < 0 || n >= MAX_JOBS) {
    return -1;
  }
  return n;
}

/* Records a delivery and checks the job handle the pool passed in. */
static int record(struct ctx *c, const jobq_job *job) {
  int idx = job_index(job);
  const char *queue = jobq_job_queue(job);
  pthread_mutex_lock(&c->mu);
  if (jobq_job_id(job) == 0 || queue == NULL ||
      strcmp(queue, c->queue) != 0 || jobq_job_attempt(job) == 0 || idx < 0) {
    c->bad_job++;
  }
  if (idx >= 0) {
    c->deliveries[idx]++;
    c->last_attempt[idx] = jobq_job_attempt(job);
  }
  c->delivered++;
  c->started++;
  c->in_flight++;
  if (c->in_flight > c->max_in_flight) {
    c->max_in_flight = c->in_flight;
  }
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  return idx;
}

/* Lets handlers waiting for the gate (gated handlers) return. */
static void open_gate(struct ctx *c) {
  pthread_mutex_lock(&c->mu);
  c->gate_open = 1;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static void leave(struct ctx *c) {
  pthread_mutex_lock(&c->mu);
  c->in_flight--;
  c->returned++;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static jobq_outcome done_handler(const jobq_job *job, void *user_data) {
  struct ctx *c = user_data;
  record(c, job);
  if (c->sleep_ms > 0) {
    tu_sleep_ms(c->sleep_ms);
  }
  leave(c);
  return JOBQ_DONE;
}

static void put_jobs(jobq *q, const char *queue, int from, int to,
                     const jobq_put_opts *opts) {
  char text[32];
  int i;
  for (i = from; i < to; i++) {
    snprintf(text, sizeof text, "job-%d", i);
    tu_put(q, queue, text, opts);
  }
}

static void test_basic(jobq *q) {
  struct ctx c;
  jobq_worker *w = NULL;
  int i;
  ctx_init(&c, "basic");
  put_jobs(q, "basic", 0, 5, NULL);
  put_jobs(q, "untouched", 0, 2, NULL);
  CHECK_OK(jobq_worker_start(q, "basic", NULL, done_handler, &c, &w));
  CHECK(w != NULL);
  CHECK(strcmp(jobq_last_error(), "") == 0);
  CHECK(ctx_wait(&c, &c.returned, 5, TU_MUST_MS) == 5);

  /* A job put while the pool waits is picked up without a restart. */
  put_jobs(q, "basic", 5, 6, NULL);
  CHECK(ctx_wait(&c, &c.returned, 6, TU_MUST_MS) == 6);
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, -1));
  }
  for (i = 0; i < 6; i++) {
    CHECK(c.deliveries[i] == 1);
    CHECK(c.last_attempt[i] == 1);
  }
  CHECK(c.bad_job == 0);
  /* Default concurrency is 1. */
  CHECK(c.max_in_flight == 1);
  TU_CHECK_COUNTS(q, "basic", 0, 0, 0, 0);
  /* The pool only works its own queue. */
  TU_CHECK_COUNTS(q, "untouched", 2, 0, 0, 0);
  ctx_destroy(&c);
}

/* job-0: RETRY once, job-1: BURY, job-2: 7 once, job-3: -1 once,
 * job-4: RETRY always (max_attempts 2), job-5: DONE. */
static jobq_outcome outcome_handler(const jobq_job *job, void *user_data) {
  struct ctx *c = user_data;
  int idx = record(c, job);
  uint32_t attempt = jobq_job_attempt(job);
  jobq_outcome out = JOBQ_DONE;
  switch (idx) {
  case 0:
    out = attempt == 1 ? JOBQ_RETRY : JOBQ_DONE;
    break;
  case 1:
    out = JOBQ_BURY;
    break;
  case 2:
    out = attempt == 1 ? (jobq_outcome)7 : JOBQ_DONE;
    break;
  case 3:
    out = attempt == 1 ? (jobq_outcome)-1 : JOBQ_DONE;
    break;
  case 4:
    out = JOBQ_RETRY;
    break;
  default:
    break;
  }
  leave(c);
  return out;
}

static void test_outcomes(jobq *q) {
  struct ctx c;
  jobq_worker *w = NULL;
  jobq_worker_opts wopts;
  jobq_put_opts opts;
  ctx_init(&c, "outcomes");
  put_jobs(q, "outcomes", 0, 4, NULL);
  jobq_put_opts_init(&opts);
  opts.max_attempts = 2;
  put_jobs(q, "outcomes", 4, 5, &opts);
  put_jobs(q, "outcomes", 5, 6, NULL);

  jobq_worker_opts_init(&wopts);
  wopts.concurrency = 2;
  CHECK_OK(jobq_worker_start(q, "outcomes", &wopts, outcome_handler, &c, &w));
  /* 2 + 1 + 2 + 2 + 2 + 1 deliveries in all. */
  CHECK(ctx_wait(&c, &c.returned, 10, TU_MUST_MS) == 10);
  CHECK(tu_wait_stat(q, "outcomes", "dead", 2, TU_MUST_MS) == 2);
  /* Give a wrong extra delivery a moment to show up. */
  tu_sleep_ms(150);
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, -1));
  }
  CHECK(c.deliveries[0] == 2);
  CHECK(c.last_attempt[0] == 2);
  CHECK(c.deliveries[1] == 1);
  /* Unknown outcomes are retries: not acked, not buried. */
  CHECK(c.deliveries[2] == 2);
  CHECK(c.last_attempt[2] == 2);
  CHECK(c.deliveries[3] == 2);
  CHECK(c.last_attempt[3] == 2);
  CHECK(c.deliveries[4] == 2);
  CHECK(c.deliveries[5] == 1);
  CHECK(c.bad_job == 0);
  /* Dead: job-1 (buried) and job-4 (out of attempts). */
  TU_CHECK_COUNTS(q, "outcomes", 0, 0, 0, 2);
  ctx_destroy(&c);
}

/* Each handler waits until all four are inside at once. */
static jobq_outcome rendezvous_handler(const jobq_job *job, void *user_data) {
  struct ctx *c = user_data;
  record(c, job);
  ctx_wait(c, &c->started, 4, TU_MUST_MS);
  leave(c);
  return JOBQ_DONE;
}

static void test_concurrency(jobq *q) {
  struct ctx c;
  jobq_worker *w = NULL;
  jobq_worker_opts wopts;
  ctx_init(&c, "conc");
  put_jobs(q, "conc", 0, 4, NULL);
  jobq_worker_opts_init(&wopts);
  CHECK(wopts.struct_size == sizeof wopts);
  CHECK(wopts.concurrency == 1);
  wopts.concurrency = 4;
  CHECK_OK(jobq_worker_start(q, "conc", &wopts, rendezvous_handler, &c, &w));
  CHECK(ctx_wait(&c, &c.returned, 4, 2 * TU_MUST_MS) == 4);
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, -1));
  }
  CHECK(c.max_in_flight == 4);
  CHECK(c.delivered == 4);
  CHECK(c.bad_job == 0);
  TU_CHECK_COUNTS(q, "conc", 0, 0, 0, 0);
  ctx_destroy(&c);

  /* And never more than asked for. */
  ctx_init(&c, "conc2");
  c.sleep_ms = 20;
  put_jobs(q, "conc2", 0, 6, NULL);
  wopts.concurrency = 2;
  CHECK_OK(jobq_worker_start(q, "conc2", &wopts, done_handler, &c, &w));
  CHECK(ctx_wait(&c, &c.returned, 6, TU_MUST_MS) == 6);
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, -1));
  }
  CHECK(c.max_in_flight <= 2);
  CHECK(c.delivered == 6);
  ctx_destroy(&c);
}

/* A handler that runs two and a half leases long: renewal keeps the job
 * its own. The lease scales with the environment's speed (renewal must keep
 * up under valgrind too); 200 ms natively. */
static void test_lease_renewal(jobq *q) {
  const int64_t lease = TU_SCALE(200);
  struct ctx c;
  jobq_worker *w = NULL;
  jobq_worker_opts wopts;
  jobq_put_opts opts;
  jobq_job *stolen = NULL;
  jobq_status st;
  ctx_init(&c, "long");
  c.sleep_ms = (long)(lease * 5 / 2);
  jobq_put_opts_init(&opts);
  opts.lease_ms = (uint64_t)lease;
  put_jobs(q, "long", 0, 1, &opts);
  jobq_worker_opts_init(&wopts);
  wopts.concurrency = 2; /* a free pool thread could take a lapsed job */
  CHECK_OK(jobq_worker_start(q, "long", &wopts, done_handler, &c, &w));
  CHECK(ctx_wait(&c, &c.started, 1, TU_MUST_MS) == 1);
  /* For as long as the handler runs, nobody else gets its job. */
  st = jobq_reserve(q, "long", c.sleep_ms, &stolen);
  CHECK_STATUS(st, JOBQ_TIMEOUT);
  if (st == JOBQ_OK) {
    jobq_job_free(stolen);
  }
  CHECK(ctx_wait(&c, &c.returned, 1, TU_MUST_MS) >= 1);
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, -1));
  }
  CHECK(c.deliveries[0] == 1);
  CHECK(c.delivered == 1);
  TU_CHECK_COUNTS(q, "long", 0, 0, 0, 0);
  ctx_destroy(&c);
}

/* stop(-1) returns only after the running handler returned and its DONE
 * was stored. */
static void test_stop_waits(jobq *q) {
  struct ctx c;
  jobq_worker *w = NULL;
  ctx_init(&c, "stopwait");
  c.sleep_ms = 200;
  put_jobs(q, "stopwait", 0, 1, NULL);
  CHECK_OK(jobq_worker_start(q, "stopwait", NULL, done_handler, &c, &w));
  CHECK(ctx_wait(&c, &c.started, 1, TU_MUST_MS) == 1);
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, -1));
  }
  pthread_mutex_lock(&c.mu);
  CHECK(c.returned == 1);
  pthread_mutex_unlock(&c.mu);
  TU_CHECK_COUNTS(q, "stopwait", 0, 0, 0, 0);
  tu_expect_nothing(q, "stopwait", 0);
  ctx_destroy(&c);
}

static void test_stop_idle_is_prompt(jobq *q) {
  jobq_worker *w = NULL;
  struct ctx c;
  int64_t t0;
  ctx_init(&c, "idle");
  CHECK_OK(jobq_worker_start(q, "idle", NULL, done_handler, &c, &w));
  tu_sleep_ms(30);
  t0 = tu_now_ms();
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, TU_SCALE(3000)));
  }
  /* A pool blocked in reserve must notice the stop, not sit out a wait. */
  CHECK(tu_now_ms() - t0 < TU_SCALE(3000));
  CHECK(c.delivered == 0);

  /* timeout 0 on an idle pool is fine too. */
  CHECK_OK(jobq_worker_start(q, "idle", NULL, done_handler, &c, &w));
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, 0));
  }
  ctx_destroy(&c);
}

static jobq_outcome gated_handler(const jobq_job *job, void *user_data) {
  struct ctx *c = user_data;
  record(c, job);
  ctx_wait(c, &c->gate_open, 1, TU_SCALE(20000));
  leave(c);
  return JOBQ_DONE;
}

/* Jobs 0-9 return at once, later ones wait for the gate. */
static jobq_outcome gated_from_10_handler(const jobq_job *job, void *user_data) {
  struct ctx *c = user_data;
  if (record(c, job) >= 10) {
    ctx_wait(c, &c->gate_open, 1, TU_SCALE(20000));
  }
  leave(c);
  return JOBQ_DONE;
}

static void *stop_thread(void *arg) {
  jobq_worker *w = arg;
  return (void *)(intptr_t)jobq_worker_stop(w, -1);
}

/* While handlers are quick, a pool leases up to `concurrency` jobs ahead of
 * its handlers; stopping releases them unrun and without counting an
 * attempt, and stores the outcomes of the handlers it waited for. */
static void test_stop_releases_ahead(jobq *q) {
  struct ctx c;
  jobq_worker *w = NULL;
  jobq_worker_opts wopts;
  pthread_t stopper;
  void *stop_rc = NULL;
  tu_counts n;
  int64_t deadline;
  int i;
  ctx_init(&c, "ahead");
  put_jobs(q, "ahead", 0, 40, NULL);
  jobq_worker_opts_init(&wopts);
  wopts.concurrency = 2;
  CHECK_OK(jobq_worker_start(q, "ahead", &wopts, gated_from_10_handler, &c, &w));
  /* Jobs 0-9 done, 10 and 11 held by the 2 handlers at the gate. */
  CHECK(ctx_wait(&c, &c.started, 12, TU_MUST_MS) == 12);
  /* Outcomes are stored by the pool's feeder thread, a moment after the
   * handlers return: wait until jobs 0-9 are gone. */
  deadline = tu_now_ms() + TU_MUST_MS;
  for (;;) {
    n = tu_counts_of(q, "ahead");
    if (n.ready + n.reserved == 30 || tu_now_ms() >= deadline) {
      break;
    }
    tu_sleep_ms(2);
  }
  /* Then the feeder's lease-ahead round (natively it must come; under a
   * slow tool the handlers may not count as quick, so do not wait long). */
  deadline = tu_now_ms() + (tu_slow() == 1 ? TU_MUST_MS : TU_SCALE(50));
  while (n.reserved < 4 && tu_now_ms() < deadline) {
    tu_sleep_ms(2);
    n = tu_counts_of(q, "ahead");
  }
  /* 2 running + at most 2 (the concurrency) ahead. */
  CHECK(n.reserved >= 2 && n.reserved <= 4);
  if (tu_slow() == 1) {
    /* Natively the first 10 handlers were quick, so the pool leased ahead. */
    CHECK(n.reserved == 4);
  }
  CHECK(n.ready + n.reserved == 30);
  if (w == NULL) {
    ctx_destroy(&c);
    return;
  }
  CHECK(pthread_create(&stopper, NULL, stop_thread, w) == 0);
  /* Let the stop begin while both handlers are still held, then let them go. */
  tu_sleep_ms(50);
  open_gate(&c);
  CHECK(pthread_join(stopper, &stop_rc) == 0);
  CHECK((jobq_status)(intptr_t)stop_rc == JOBQ_OK);
  /* No job started after the stop; the 2 held ones were acked. */
  CHECK(c.started == 12);
  TU_CHECK_COUNTS(q, "ahead", 28, 0, 0, 0);
  /* The released jobs come back as first deliveries, in order. */
  for (i = 12; i < 40; i++) {
    jobq_job *job = NULL;
    CHECK_OK(jobq_reserve(q, "ahead", 0, &job));
    if (job == NULL) {
      break;
    }
    CHECK(job_index(job) == i);
    CHECK(jobq_job_attempt(job) == 1);
    CHECK_OK(jobq_ack(job));
    jobq_job_free(job);
  }
  TU_CHECK_COUNTS(q, "ahead", 0, 0, 0, 0);
  ctx_destroy(&c);
}

/* A stop that times out frees the worker; the queue stays busy until the
 * straggling handler returns, then closes normally. */
static void test_stop_timeout(const char *dir) {
  jobq *q = tu_open(dir, "timeout.db", CFG);
  struct ctx c;
  jobq_worker *w = NULL;
  jobq_status st = JOBQ_E_BUSY;
  int64_t deadline;
  ctx_init(&c, "gated");
  put_jobs(q, "gated", 0, 1, NULL);
  CHECK_OK(jobq_worker_start(q, "gated", NULL, gated_handler, &c, &w));
  CHECK(ctx_wait(&c, &c.started, 1, TU_MUST_MS) == 1);
  if (w != NULL) {
    CHECK_STATUS(jobq_worker_stop(w, 50), JOBQ_TIMEOUT);
    CHECK_STATUS(jobq_worker_stop(w, -1), JOBQ_E_HANDLE);
  }
  CHECK_STATUS(jobq_close(q), JOBQ_E_BUSY);

  open_gate(&c);
  CHECK(ctx_wait(&c, &c.returned, 1, TU_MUST_MS) == 1);

  deadline = tu_now_ms() + TU_MUST_MS;
  while ((st = jobq_close(q)) == JOBQ_E_BUSY && tu_now_ms() < deadline) {
    tu_sleep_ms(10);
  }
  CHECK_OK(st);
  ctx_destroy(&c);
}

static void test_close_while_running(const char *dir) {
  jobq *q = tu_open(dir, "closebusy.db", CFG);
  struct ctx c;
  jobq_worker *w = NULL;
  ctx_init(&c, "cb");
  CHECK_OK(jobq_worker_start(q, "cb", NULL, done_handler, &c, &w));
  CHECK_STATUS(jobq_close(q), JOBQ_E_BUSY);
  /* Still working after the refused close. */
  put_jobs(q, "cb", 0, 1, NULL);
  CHECK(ctx_wait(&c, &c.returned, 1, TU_MUST_MS) == 1);
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, -1));
  }
  CHECK_OK(jobq_close(q));
  ctx_destroy(&c);
}

/* Two pools on one queue share the work without doubling any of it. */
static void test_two_pools(jobq *q) {
  struct ctx c;
  jobq_worker *a = NULL, *b = NULL;
  jobq_worker_opts wopts;
  int i;
  ctx_init(&c, "shared");
  jobq_worker_opts_init(&wopts);
  wopts.concurrency = 2;
  CHECK_OK(jobq_worker_start(q, "shared", &wopts, done_handler, &c, &a));
  CHECK_OK(jobq_worker_start(q, "shared", &wopts, done_handler, &c, &b));
  put_jobs(q, "shared", 0, 30, NULL);
  CHECK(ctx_wait(&c, &c.returned, 30, 2 * TU_MUST_MS) == 30);
  if (a != NULL) {
    CHECK_OK(jobq_worker_stop(a, -1));
  }
  if (b != NULL) {
    CHECK_OK(jobq_worker_stop(b, -1));
  }
  for (i = 0; i < 30; i++) {
    CHECK(c.deliveries[i] == 1);
  }
  CHECK(c.delivered == 30);
  ctx_destroy(&c);
}

/* A handler may use the queue it runs on: here it puts a follow-up job
 * (a common chaining pattern) while the pool holds its own job. */
struct chain_ctx {
  struct ctx c;
  jobq *q;
  int put_failures;
};

static jobq_outcome chain_handler(const jobq_job *job, void *user_data) {
  struct chain_ctx *cc = user_data;
  record(&cc->c, job);
  if (jobq_put(cc->q, "chain-next", "next", 4, NULL, NULL) != JOBQ_OK) {
    pthread_mutex_lock(&cc->c.mu);
    cc->put_failures++;
    pthread_mutex_unlock(&cc->c.mu);
  }
  leave(&cc->c);
  return JOBQ_DONE;
}

static void test_handler_uses_queue(jobq *q) {
  struct chain_ctx cc;
  jobq_worker *w = NULL;
  ctx_init(&cc.c, "chain");
  cc.q = q;
  cc.put_failures = 0;
  put_jobs(q, "chain", 0, 3, NULL);
  CHECK_OK(jobq_worker_start(q, "chain", NULL, chain_handler, &cc, &w));
  CHECK(ctx_wait(&cc.c, &cc.c.returned, 3, TU_MUST_MS) == 3);
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, -1));
  }
  CHECK(cc.put_failures == 0);
  TU_CHECK_COUNTS(q, "chain", 0, 0, 0, 0);
  TU_CHECK_COUNTS(q, "chain-next", 3, 0, 0, 0);
  ctx_destroy(&cc.c);
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  jobq *q;
  tu_watchdog();
  q = tu_open(dir, "q.db", CFG);
  test_basic(q);
  test_outcomes(q);
  test_concurrency(q);
  test_lease_renewal(q);
  test_stop_waits(q);
  test_stop_idle_is_prompt(q);
  test_two_pools(q);
  test_handler_uses_queue(q);
  test_stop_releases_ahead(q);
  CHECK_OK(jobq_close(q));
  test_stop_timeout(dir);
  test_close_while_running(dir);
  return check_finish("test_workers");
}
