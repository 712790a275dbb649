/* The batched calls: jobq_ack_reserve (ack one delivery and lease the next
 * job in one call), jobq_reserve_many (lease up to max jobs at once) and
 * jobq_ack_many (ack n deliveries at once, each lease token checked on its
 * own). Their waits and timeouts mirror jobq_reserve; a stale delivery is
 * JOBQ_E_STATE as for jobq_ack, and bad arguments change nothing. */
#include <pthread.h>

#include "testutil.h"

/* Long default lease (a held job must not slip away under valgrind) and
 * long backoff; short leases are set per job with jobq_put_opts.lease_ms. */
static const char *CFG =
    "{\"durability\":\"normal\",\"backoff_base_ms\":60000,"
    "\"backoff_max_ms\":60000,\"backoff_jitter\":0}";

/* A job put with a lease short enough to expire during the test. */
static uint64_t put_short_lease(jobq *q, const char *queue, const char *text) {
  jobq_put_opts opts;
  jobq_put_opts_init(&opts);
  opts.lease_ms = (uint64_t)TU_SCALE(40);
  return tu_put(q, queue, text, &opts);
}

/* Waits for the expired lease of a job held elsewhere to end, reserves the
 * job again (its second delivery) and makes that lease long. */
static jobq_job *redeliver(jobq *q, const char *queue, uint64_t id) {
  jobq_job *b = tu_reserve(q, queue, TU_MUST_MS);
  if (b == NULL) {
    return NULL;
  }
  CHECK(jobq_job_id(b) == id);
  CHECK(jobq_job_attempt(b) == 2);
  /* A touch after expiry still works while nobody else took it. */
  CHECK_OK(jobq_touch(b, 60000));
  return b;
}

/* A worker's loop: each ack_reserve acks the job held and leases the next,
 * in (priority, id) order; the old handle stays valid until freed, and its
 * delivery is finished (a second ack is JOBQ_E_STATE). */
static void test_ack_reserve_loop(jobq *q) {
  uint64_t ids[3];
  jobq_job *job, *next;
  int i;
  ids[0] = tu_put(q, "ar", "one", NULL);
  ids[1] = tu_put(q, "ar", "two", NULL);
  ids[2] = tu_put(q, "ar", "three", NULL);
  job = tu_reserve(q, "ar", 0);
  if (job == NULL) {
    return;
  }
  CHECK(jobq_job_id(job) == ids[0]);
  for (i = 1; i < 3; i++) {
    next = NULL;
    CHECK_OK(jobq_ack_reserve(job, "ar", 0, &next));
    CHECK(next != NULL);
    if (next == NULL) {
      jobq_job_free(job);
      return;
    }
    CHECK(jobq_job_id(next) == ids[i]);
    CHECK(jobq_job_attempt(next) == 1);
    CHECK(tu_payload_is(next, i == 1 ? "two" : "three"));
    CHECK(strcmp(jobq_job_queue(next), "ar") == 0);
    /* The acked handle still answers, but its delivery is spent. */
    CHECK(jobq_job_id(job) == ids[i - 1]);
    CHECK_STATUS(jobq_ack(job), JOBQ_E_STATE);
    CHECK_STATUS(jobq_ack_reserve(job, "ar", 0, &next), JOBQ_E_STATE);
    jobq_job_free(job);
    TU_CHECK_COUNTS(q, "ar", 2 - i, 0, 1, 0);
    job = next;
  }
  /* Nothing left: the ack is still stored, and *out_next is NULL. */
  next = job; /* any non-NULL value: the call must overwrite it */
  CHECK_STATUS(jobq_ack_reserve(job, "ar", 0, &next), JOBQ_TIMEOUT);
  CHECK(next == NULL);
  CHECK(jobq_last_error()[0] == '\0');
  jobq_job_free(job);
  TU_CHECK_COUNTS(q, "ar", 0, 0, 0, 0);

  /* The next job may come from another queue of the same handle. */
  {
    uint64_t other = tu_put(q, "ar-other", "o", NULL);
    tu_put(q, "ar", "x", NULL);
    job = tu_reserve(q, "ar", 0);
    if (job == NULL) {
      return;
    }
    next = NULL;
    CHECK_OK(jobq_ack_reserve(job, "ar-other", 0, &next));
    jobq_job_free(job);
    CHECK(next != NULL && jobq_job_id(next) == other);
    CHECK(next != NULL && strcmp(jobq_job_queue(next), "ar-other") == 0);
    tu_ack_free(next);
    TU_CHECK_COUNTS(q, "ar", 0, 0, 0, 0);
    TU_CHECK_COUNTS(q, "ar-other", 0, 0, 0, 0);
  }
}

/* Nothing ready: ack_reserve waits its timeout like jobq_reserve, returns
 * JOBQ_TIMEOUT, and the ack was committed all the same. */
static void test_ack_reserve_empty_waits(jobq *q, const char *dir) {
  const int64_t wait = 60;
  jobq_job *job, *next;
  int64_t t0, took;
  tu_put(q, "are", "x", NULL);
  job = tu_reserve(q, "are", 0);
  if (job == NULL) {
    return;
  }
  next = job;
  t0 = tu_now_ms();
  CHECK_STATUS(jobq_ack_reserve(job, "are", wait, &next), JOBQ_TIMEOUT);
  took = tu_now_ms() - t0;
  CHECK(next == NULL);
  CHECK(took >= wait - 5);
  CHECK(took < TU_MUST_MS);
  CHECK_STATUS(jobq_ack(job), JOBQ_E_STATE);
  jobq_job_free(job);
  TU_CHECK_COUNTS(q, "are", 0, 0, 0, 0);
  /* Committed: a second handle on the same store sees it too. */
  {
    jobq *q2 = tu_open(dir, "q.db", CFG);
    TU_CHECK_COUNTS(q2, "are", 0, 0, 0, 0);
    CHECK_OK(jobq_close(q2));
  }
}

/* A job that becomes due (a delay) ends ack_reserve's wait, as it ends a
 * jobq_reserve's. */
static void test_ack_reserve_waits_for_due(jobq *q) {
  jobq_put_opts opts;
  jobq_job *job, *next = NULL;
  uint64_t later;
  int64_t t0, took;
  tu_put(q, "ard", "now", NULL);
  jobq_put_opts_init(&opts);
  opts.delay_ms = 80;
  /* Before the put: the delay counts from the put's own time. */
  t0 = tu_now_ms();
  later = tu_put(q, "ard", "later", &opts);
  job = tu_reserve(q, "ard", 0);
  if (job == NULL) {
    return;
  }
  CHECK_OK(jobq_ack_reserve(job, "ard", TU_MUST_MS, &next));
  took = tu_now_ms() - t0;
  jobq_job_free(job);
  CHECK(next != NULL && jobq_job_id(next) == later);
  CHECK(took >= 70);
  CHECK(took < TU_MUST_MS);
  tu_ack_free(next);
  TU_CHECK_COUNTS(q, "ard", 0, 0, 0, 0);
}

struct delayed_put {
  jobq *q;
  const char *queue;
  long after_ms;
};

static void *put_later(void *arg) {
  struct delayed_put *p = arg;
  tu_sleep_ms(p->after_ms);
  tu_put(p->q, p->queue, "woken", NULL);
  return NULL;
}

/* A put from another thread wakes a waiting ack_reserve and a waiting
 * reserve_many promptly. */
static void test_wakeups(jobq *q) {
  struct delayed_put p = {q, "arw", 50};
  pthread_t t;
  jobq_job *job, *next = NULL;
  jobq_job *jobs[4] = {NULL, NULL, NULL, NULL};
  size_t n = 99;
  int64_t t0;
  tu_put(q, "arw", "first", NULL);
  job = tu_reserve(q, "arw", 0);
  if (job == NULL) {
    return;
  }
  CHECK(pthread_create(&t, NULL, put_later, &p) == 0);
  t0 = tu_now_ms();
  CHECK_OK(jobq_ack_reserve(job, "arw", -1, &next));
  CHECK(tu_now_ms() - t0 < TU_MUST_MS);
  CHECK(pthread_join(t, NULL) == 0);
  jobq_job_free(job);
  CHECK(next != NULL && tu_payload_is(next, "woken"));
  tu_ack_free(next);

  CHECK(pthread_create(&t, NULL, put_later, &p) == 0);
  t0 = tu_now_ms();
  CHECK_OK(jobq_reserve_many(q, "arw", 4, TU_MUST_MS, jobs, &n));
  CHECK(tu_now_ms() - t0 < TU_MUST_MS);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(n == 1);
  CHECK(jobs[0] != NULL && tu_payload_is(jobs[0], "woken"));
  CHECK(jobs[1] == NULL);
  tu_ack_free(jobs[0]);
  TU_CHECK_COUNTS(q, "arw", 0, 0, 0, 0);
}

/* The job's lease expired and it went to someone else: ack_reserve is
 * JOBQ_E_STATE, acks nothing and leases nothing. */
static void test_ack_reserve_stale(jobq *q) {
  jobq_job *a, *b, *next = NULL;
  uint64_t id = put_short_lease(q, "ars", "x");
  uint64_t waiting = tu_put(q, "ars-next", "y", NULL);
  a = tu_reserve(q, "ars", 0);
  if (a == NULL) {
    return;
  }
  b = redeliver(q, "ars", id);
  if (b == NULL) {
    jobq_job_free(a);
    return;
  }
  CHECK_STATUS(jobq_ack_reserve(a, "ars-next", 0, &next), JOBQ_E_STATE);
  CHECK(next == NULL);
  CHECK(jobq_last_error()[0] != '\0');
  /* B still holds the job; the other queue's job was not leased. */
  TU_CHECK_COUNTS(q, "ars", 0, 0, 1, 0);
  TU_CHECK_COUNTS(q, "ars-next", 1, 0, 0, 0);
  /* A's delivery is spent for good: later calls are refused too. */
  CHECK_STATUS(jobq_ack(a), JOBQ_E_STATE);
  jobq_job_free(a);
  tu_ack_free(b);
  next = tu_reserve(q, "ars-next", 0);
  CHECK(next != NULL && jobq_job_id(next) == waiting);
  tu_ack_free(next);
  TU_CHECK_COUNTS(q, "ars", 0, 0, 0, 0);
  TU_CHECK_COUNTS(q, "ars-next", 0, 0, 0, 0);
}

static void free_all(jobq_job **jobs, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    jobq_job_free(jobs[i]);
    jobs[i] = NULL;
  }
}

/* reserve_many leases up to max jobs, smallest (priority, id) first,
 * writes only *out_n slots, and ack_many finishes them all. */
static void test_reserve_many_order(jobq *q) {
  jobq_put_opts urgent, late;
  jobq_payload items[5];
  uint64_t normal[5], first[2], last;
  jobq_job *jobs[10];
  jobq_status statuses[10];
  size_t n = 0, i;
  static const char *texts[5] = {"p0", "p1", "p2", "p3", "p4"};
  for (i = 0; i < 5; i++) {
    items[i].data = texts[i];
    items[i].len = 2;
  }
  for (i = 0; i < 10; i++) {
    jobs[i] = NULL;
    statuses[i] = JOBQ_DUPLICATE; /* a sentinel no ack_many answer uses */
  }
  CHECK_OK(jobq_put_batch(q, "rm", items, 5, NULL, normal));
  jobq_put_opts_init(&urgent);
  urgent.priority = -1;
  jobq_put_opts_init(&late);
  late.priority = 5;
  last = tu_put(q, "rm", "z", &late);
  first[0] = tu_put(q, "rm", "n0", &urgent);
  first[1] = tu_put(q, "rm", "n1", &urgent);

  CHECK_OK(jobq_reserve_many(q, "rm", 4, 0, jobs, &n));
  CHECK(n == 4);
  CHECK(jobq_job_id(jobs[0]) == first[0] && tu_payload_is(jobs[0], "n0"));
  CHECK(jobq_job_id(jobs[1]) == first[1]);
  CHECK(jobq_job_id(jobs[2]) == normal[0] && tu_payload_is(jobs[2], "p0"));
  CHECK(jobq_job_id(jobs[3]) == normal[1]);
  CHECK(jobs[4] == NULL); /* slots past *out_n are not written */
  for (i = 0; i < 4; i++) {
    CHECK(jobq_job_attempt(jobs[i]) == 1);
    CHECK(jobs[i] != NULL && strcmp(jobq_job_queue(jobs[i]), "rm") == 0);
  }
  TU_CHECK_COUNTS(q, "rm", 4, 0, 4, 0);

  /* Fewer ready than max: all of them, at once. */
  CHECK_OK(jobq_reserve_many(q, "rm", 6, TU_MUST_MS, jobs + 4, &n));
  CHECK(n == 4);
  CHECK(jobq_job_id(jobs[4]) == normal[2]);
  CHECK(jobq_job_id(jobs[5]) == normal[3]);
  CHECK(jobq_job_id(jobs[6]) == normal[4]);
  CHECK(jobq_job_id(jobs[7]) == last && tu_payload_is(jobs[7], "z"));
  CHECK(jobs[8] == NULL);
  TU_CHECK_COUNTS(q, "rm", 0, 0, 8, 0);

  CHECK_OK(jobq_ack_many(jobs, 8, statuses));
  for (i = 0; i < 8; i++) {
    CHECK(statuses[i] == JOBQ_OK);
  }
  CHECK(statuses[8] == JOBQ_DUPLICATE);
  TU_CHECK_COUNTS(q, "rm", 0, 0, 0, 0);
  /* Each delivery is spent: a second ack_many finds all of them stale. */
  CHECK_STATUS(jobq_ack_many(jobs, 8, statuses), JOBQ_E_STATE);
  for (i = 0; i < 8; i++) {
    CHECK(statuses[i] == JOBQ_E_STATE);
  }
  free_all(jobs, 8);

  /* The bound itself is accepted. */
  n = 99;
  CHECK_STATUS(jobq_reserve_many(q, "rm", JOBQ_RESERVE_MANY_MAX, 0, jobs, &n),
               JOBQ_TIMEOUT);
  CHECK(n == 0);
  CHECK(jobs[0] == NULL);
}

/* Nothing ready: reserve_many waits its timeout, then JOBQ_TIMEOUT and
 * *out_n = 0; a job that becomes due ends the wait early. */
static void test_reserve_many_waits(jobq *q) {
  const int64_t wait = 60;
  jobq_job *jobs[3] = {NULL, NULL, NULL};
  jobq_put_opts opts;
  size_t n = 99;
  int64_t t0 = tu_now_ms(), took;
  CHECK_STATUS(jobq_reserve_many(q, "rmw", 3, wait, jobs, &n), JOBQ_TIMEOUT);
  took = tu_now_ms() - t0;
  CHECK(n == 0);
  CHECK(jobs[0] == NULL);
  CHECK(took >= wait - 5);
  CHECK(took < TU_MUST_MS);
  CHECK(jobq_last_error()[0] == '\0');

  n = 99;
  CHECK_STATUS(jobq_reserve_many(q, "rmw", 3, 0, jobs, &n), JOBQ_TIMEOUT);
  CHECK(n == 0);

  jobq_put_opts_init(&opts);
  opts.delay_ms = 80;
  t0 = tu_now_ms();
  tu_put(q, "rmw", "d", &opts);
  CHECK_OK(jobq_reserve_many(q, "rmw", 3, TU_MUST_MS, jobs, &n));
  took = tu_now_ms() - t0;
  CHECK(n == 1);
  CHECK(jobs[0] != NULL && tu_payload_is(jobs[0], "d"));
  CHECK(took >= 70);
  CHECK(took < TU_MUST_MS);
  CHECK_OK(jobq_ack_many(jobs, n, NULL));
  free_all(jobs, n);
  TU_CHECK_COUNTS(q, "rmw", 0, 0, 0, 0);
}

/* One stale delivery in the middle of a batch: its own status is
 * JOBQ_E_STATE, the call's is JOBQ_E_STATE, the others are acked. */
static void test_ack_many_stale_middle(jobq *q) {
  jobq_job *jobs[3] = {NULL, NULL, NULL};
  jobq_status statuses[3] = {JOBQ_DUPLICATE, JOBQ_DUPLICATE, JOBQ_DUPLICATE};
  jobq_job *b;
  size_t n = 0;
  uint64_t stale;
  tu_put(q, "ams", "a", NULL);
  stale = put_short_lease(q, "ams", "b");
  tu_put(q, "ams", "c", NULL);
  CHECK_OK(jobq_reserve_many(q, "ams", 3, 0, jobs, &n));
  CHECK(n == 3);
  if (n != 3) {
    free_all(jobs, n);
    return;
  }
  CHECK(jobq_job_id(jobs[1]) == stale);
  b = redeliver(q, "ams", stale);
  if (b == NULL) {
    free_all(jobs, 3);
    return;
  }
  CHECK_STATUS(jobq_ack_many(jobs, 3, statuses), JOBQ_E_STATE);
  CHECK(strstr(jobq_last_error(), "jobs[1]") != NULL);
  CHECK(statuses[0] == JOBQ_OK);
  CHECK(statuses[1] == JOBQ_E_STATE);
  CHECK(statuses[2] == JOBQ_OK);
  /* The new holder still has it; the others are gone. */
  TU_CHECK_COUNTS(q, "ams", 0, 0, 1, 0);
  CHECK_STATUS(jobq_ack(jobs[0]), JOBQ_E_STATE);
  CHECK_STATUS(jobq_ack(jobs[1]), JOBQ_E_STATE);
  tu_ack_free(b);
  TU_CHECK_COUNTS(q, "ams", 0, 0, 0, 0);
  free_all(jobs, 3);

  /* The same handle twice: the second is stale. */
  tu_put(q, "ams", "twice", NULL);
  jobs[0] = tu_reserve(q, "ams", 0);
  jobs[1] = jobs[0];
  CHECK_STATUS(jobq_ack_many(jobs, 2, statuses), JOBQ_E_STATE);
  CHECK(statuses[0] == JOBQ_OK);
  CHECK(statuses[1] == JOBQ_E_STATE);
  jobq_job_free(jobs[0]);
  TU_CHECK_COUNTS(q, "ams", 0, 0, 0, 0);
}

/* Bad arguments: JOBQ_E_INVALID_ARG (or JOBQ_E_HANDLE) with a message, and
 * nothing acked, leased or written. */
static void test_bad_args(jobq *q, const char *dir) {
  jobq_job *held, *freed, *next = NULL;
  jobq_job *jobs[4] = {NULL, NULL, NULL, NULL};
  jobq_status statuses[2] = {JOBQ_DUPLICATE, JOBQ_DUPLICATE};
  size_t n = 77;
  tu_put(q, "bad", "held", NULL);
  tu_put(q, "bad", "ready", NULL);
  tu_put(q, "bad", "freed", NULL);
  held = tu_reserve(q, "bad", 0);
  if (held == NULL) {
    return;
  }
  freed = tu_reserve(q, "bad", 0);
  CHECK_OK(jobq_release(freed, 0));
  jobq_job_free(freed);

  /* jobq_ack_reserve */
  CHECK_STATUS(jobq_ack_reserve(NULL, "bad", 0, &next), JOBQ_E_INVALID_ARG);
  CHECK(jobq_last_error()[0] != '\0');
  CHECK_STATUS(jobq_ack_reserve(freed, "bad", 0, &next), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_ack_reserve(held, NULL, 0, &next), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_ack_reserve(held, "", 0, &next), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_ack_reserve(held, "bad", 0, NULL), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "out_next") != NULL);
  CHECK(next == NULL);
  TU_CHECK_COUNTS(q, "bad", 2, 0, 1, 0);

  /* jobq_reserve_many */
  CHECK_STATUS(jobq_reserve_many(NULL, "bad", 2, 0, jobs, &n), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_reserve_many(q, NULL, 2, 0, jobs, &n), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_reserve_many(q, "", 2, 0, jobs, &n), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_reserve_many(q, "bad", 2, 0, NULL, &n), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_reserve_many(q, "bad", 2, 0, jobs, NULL), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_reserve_many(q, "bad", 0, 0, jobs, &n), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "max") != NULL);
  CHECK_STATUS(jobq_reserve_many(q, "bad", JOBQ_RESERVE_MANY_MAX + 1, 0, jobs, &n),
               JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "JOBQ_RESERVE_MANY_MAX") != NULL);
  CHECK_STATUS(jobq_reserve_many(q, "bad", (size_t)-1, 0, jobs, &n), JOBQ_E_INVALID_ARG);
  CHECK(n == 77);
  CHECK(jobs[0] == NULL);
  TU_CHECK_COUNTS(q, "bad", 2, 0, 1, 0);

  /* jobq_ack_many */
  CHECK_OK(jobq_ack_many(NULL, 0, NULL)); /* n == 0: nothing to do */
  CHECK_OK(jobq_ack_many(jobs, 0, statuses));
  CHECK(statuses[0] == JOBQ_DUPLICATE);
  CHECK_STATUS(jobq_ack_many(NULL, 2, statuses), JOBQ_E_INVALID_ARG);
  jobs[0] = held;
  jobs[1] = NULL;
  CHECK_STATUS(jobq_ack_many(jobs, 2, statuses), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "jobs[1]") != NULL);
  jobs[1] = freed;
  CHECK_STATUS(jobq_ack_many(jobs, 2, statuses), JOBQ_E_HANDLE);
  CHECK(strstr(jobq_last_error(), "jobs[1]") != NULL);
  CHECK(statuses[0] == JOBQ_DUPLICATE && statuses[1] == JOBQ_DUPLICATE);
  TU_CHECK_COUNTS(q, "bad", 2, 0, 1, 0);

  /* Deliveries of two handles in one call: refused, nothing acked. */
  {
    jobq *other = tu_open(dir, "other.db", CFG);
    jobq_job *theirs;
    tu_put(other, "bad", "theirs", NULL);
    theirs = tu_reserve(other, "bad", 0);
    jobs[1] = theirs;
    CHECK_STATUS(jobq_ack_many(jobs, 2, statuses), JOBQ_E_INVALID_ARG);
    CHECK(strstr(jobq_last_error(), "another queue handle") != NULL);
    CHECK(statuses[0] == JOBQ_DUPLICATE && statuses[1] == JOBQ_DUPLICATE);
    TU_CHECK_COUNTS(q, "bad", 2, 0, 1, 0);
    TU_CHECK_COUNTS(other, "bad", 0, 0, 1, 0);
    tu_ack_free(theirs);
    CHECK_OK(jobq_close(other));
  }
  /* The same when the first job's handle is closed: the mix is the caller's
   * bug, reported before the closed handle (found by the fuzzer). */
  {
    jobq *closed = tu_open(dir, "closed.db", CFG);
    jobq_job *stale;
    tu_put(closed, "bad", "stale", NULL);
    stale = tu_reserve(closed, "bad", 0);
    CHECK_OK(jobq_close(closed));
    jobs[0] = stale;
    jobs[1] = held;
    CHECK_STATUS(jobq_ack_many(jobs, 2, statuses), JOBQ_E_INVALID_ARG);
    CHECK(strstr(jobq_last_error(), "another queue handle") != NULL);
    CHECK_STATUS(jobq_ack_many(&stale, 1, statuses), JOBQ_E_SHUTDOWN);
    jobq_job_free(stale);
    jobs[0] = held;
    TU_CHECK_COUNTS(q, "bad", 2, 0, 1, 0);
  }

  /* After all that, the held job is still ours to ack. */
  CHECK_OK(jobq_ack_many(&held, 1, NULL));
  jobq_job_free(held);
  CHECK_OK(jobq_reserve_many(q, "bad", 4, 0, jobs, &n));
  CHECK(n == 2);
  CHECK_OK(jobq_ack_many(jobs, n, statuses));
  free_all(jobs, n);
  TU_CHECK_COUNTS(q, "bad", 0, 0, 0, 0);
}

/* A closed queue handle: its jobs' calls are JOBQ_E_SHUTDOWN. */
static void test_closed_handle(const char *dir) {
  jobq *q = tu_open(dir, "closed.db", CFG);
  jobq_job *job, *next = NULL;
  jobq_job *jobs[2] = {NULL, NULL};
  size_t n = 5;
  tu_put(q, "c", "x", NULL);
  job = tu_reserve(q, "c", 0);
  CHECK_OK(jobq_close(q));
  CHECK_STATUS(jobq_ack_reserve(job, "c", 0, &next), JOBQ_E_SHUTDOWN);
  CHECK(next == NULL);
  CHECK_STATUS(jobq_ack_many(&job, 1, NULL), JOBQ_E_SHUTDOWN);
  CHECK_STATUS(jobq_reserve_many(q, "c", 2, 0, jobs, &n), JOBQ_E_HANDLE);
  CHECK(n == 5);
  jobq_job_free(job);
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  jobq *q;
  tu_watchdog();
  q = tu_open(dir, "q.db", CFG);
  test_ack_reserve_loop(q);
  test_ack_reserve_empty_waits(q, dir);
  test_ack_reserve_waits_for_due(q);
  test_wakeups(q);
  test_ack_reserve_stale(q);
  test_reserve_many_order(q);
  test_reserve_many_waits(q);
  test_ack_many_stale_middle(q);
  test_bad_args(q, dir);
  CHECK_OK(jobq_close(q));
  test_closed_handle(dir);
  return check_finish("test_many");
}
