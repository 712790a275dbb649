/* The calls a beanstalkd front is built on: jobq_reserve_any (the smallest
 * (priority, id) of several queues, waiting like jobq_reserve),
 * jobq_release_priority / jobq_bury_priority (finish and reprioritise in
 * one statement), jobq_kick_job (one dead or scheduled job -> ready) and
 * jobq_peek (the next job of a queue in a state, leasing nothing). Runs on
 * a file and, on the PostgreSQL pass, in a schema. */
#include <pthread.h>

#include "testutil.h"

/* Long default lease and backoff: nothing slips away or comes back by
 * itself while a check looks. */
static const char *CFG =
    "{\"durability\":\"normal\",\"lease_ms\":60000,\"backoff_base_ms\":60000,"
    "\"backoff_max_ms\":60000,\"backoff_jitter\":0}";

static uint64_t put_pri(jobq *q, const char *queue, int32_t priority) {
  jobq_put_opts opts;
  jobq_put_opts_init(&opts);
  opts.priority = priority;
  return tu_put(q, queue, "x", &opts);
}

static uint64_t put_delayed(jobq *q, const char *queue, uint64_t delay_ms) {
  jobq_put_opts opts;
  jobq_put_opts_init(&opts);
  opts.delay_ms = delay_ms;
  return tu_put(q, queue, "d", &opts);
}

/* reserve_any expecting a job; NULL (after a failed check) if none came. */
static jobq_job *reserve_any(jobq *q, const char *const *queues, size_t n,
                             int64_t timeout_ms) {
  jobq_job *job = NULL;
  CHECK_OK(jobq_reserve_any(q, queues, n, timeout_ms, &job));
  CHECK(job != NULL);
  return job;
}

/* Reserves from `queues` until nothing is ready, acking each; writes the
 * ids in delivery order; returns how many. */
static size_t drain(jobq *q, const char *const *queues, size_t n, uint64_t *ids,
                    size_t max) {
  size_t got = 0;
  for (;;) {
    jobq_job *job = NULL;
    jobq_status st = jobq_reserve_any(q, queues, n, 0, &job);
    if (st != JOBQ_OK) {
      CHECK_STATUS(st, JOBQ_TIMEOUT);
      return got;
    }
    if (got < max) {
      ids[got] = jobq_job_id(job);
    }
    got++;
    tu_ack_free(job);
  }
}

static uint64_t peek(jobq *q, const char *queue, const char *state) {
  uint64_t id = 0;
  CHECK_OK(jobq_peek(q, queue, state, &id));
  return id;
}

/* The smallest (priority, id) across the listed queues; equal priorities
 * in put order whatever the queue; queues not listed are left alone. */
static void test_order_across_queues(jobq *q) {
  const char *abc[] = {"o-a", "o-b", "o-c"};
  uint64_t want[5], got[8];
  uint64_t a1 = put_pri(q, "o-a", 5);
  uint64_t b1 = put_pri(q, "o-b", 1);
  uint64_t c1 = put_pri(q, "o-c", 5);
  uint64_t b2 = put_pri(q, "o-b", 5);
  uint64_t a2 = put_pri(q, "o-a", -3);
  uint64_t other = put_pri(q, "o-other", -100);
  jobq_job *job;
  want[0] = a2;
  want[1] = b1;
  want[2] = a1;
  want[3] = c1;
  want[4] = b2;
  /* The first one's queue is reported by the job. */
  job = reserve_any(q, abc, 3, 0);
  if (job != NULL) {
    CHECK(jobq_job_id(job) == a2);
    CHECK(strcmp(jobq_job_queue(job), "o-a") == 0);
    CHECK(jobq_job_attempt(job) == 1);
    CHECK_OK(jobq_release(job, 0));
    jobq_job_free(job);
  }
  CHECK(drain(q, abc, 3, got, 8) == 5);
  CHECK(memcmp(got, want, sizeof want) == 0);
  TU_CHECK_COUNTS(q, "o-other", 1, 0, 0, 0);
  /* One queue alone, and a name given twice. */
  {
    const char *twice[] = {"o-other", "o-other"};
    job = reserve_any(q, twice, 2, 0);
    CHECK(job != NULL && jobq_job_id(job) == other);
    tu_ack_free(job);
  }
}

/* Due delays and expired leases count as ready, as for jobq_reserve. */
static void test_due_jobs(jobq *q) {
  const char *ab[] = {"d-a", "d-b"};
  jobq_put_opts opts;
  jobq_job *held, *job;
  uint64_t short_lease, delayed;
  jobq_put_opts_init(&opts);
  opts.lease_ms = (uint64_t)TU_SCALE(300);
  opts.priority = 1;
  short_lease = tu_put(q, "d-a", "s", &opts);
  delayed = put_delayed(q, "d-b", (uint64_t)TU_SCALE(50));
  held = reserve_any(q, ab, 2, 0);
  CHECK(held != NULL && jobq_job_id(held) == short_lease);
  /* The delay ends first: the wait sees it. */
  job = reserve_any(q, ab, 2, TU_MUST_MS);
  CHECK(job != NULL && jobq_job_id(job) == delayed);
  tu_ack_free(job);
  /* Then the short lease expires: the job is delivered again. */
  job = reserve_any(q, ab, 2, TU_MUST_MS);
  CHECK(job != NULL && jobq_job_id(job) == short_lease);
  CHECK(job != NULL && jobq_job_attempt(job) == 2);
  tu_ack_free(job);
  CHECK_STATUS(jobq_ack(held), JOBQ_E_STATE);
  jobq_job_free(held);
}

struct later {
  jobq *q;
  const char *queue;
  long after_ms;
  int action; /* 0 put, 1 resume, 2 kick_job */
  uint64_t id;
};

static void *do_later(void *arg) {
  struct later *l = arg;
  tu_sleep_ms(l->after_ms);
  switch (l->action) {
    case 0:
      l->id = tu_put(l->q, l->queue, "woken", NULL);
      break;
    case 1:
      CHECK_OK(jobq_resume(l->q, l->queue));
      break;
    default:
      CHECK_OK(jobq_kick_job(l->q, l->id));
      break;
  }
  return NULL;
}

/* Runs `l` on a thread while reserve_any(queues) waits (forever); checks
 * that the job came promptly and returns it. */
static jobq_job *woken_by(jobq *q, const char *const *queues, size_t n,
                          struct later *l) {
  pthread_t t;
  jobq_job *job = NULL;
  int64_t t0 = tu_now_ms();
  CHECK(pthread_create(&t, NULL, do_later, l) == 0);
  CHECK_OK(jobq_reserve_any(q, queues, n, -1, &job));
  CHECK(tu_now_ms() - t0 < TU_MUST_MS + l->after_ms);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(job != NULL);
  return job;
}

/* Nothing ready: it waits its timeout (out untouched); a put to ANY listed
 * queue, a resume and a kick_job end a wait. */
static void test_waits_and_wakeups(jobq *q) {
  const char *ab[] = {"w-a", "w-b"};
  static char dummy;
  jobq_job *sentinel = (jobq_job *)(void *)&dummy; /* the call must not touch it */
  jobq_job *job = sentinel;
  int64_t t0 = tu_now_ms();
  CHECK_STATUS(jobq_reserve_any(q, ab, 2, 60, &job), JOBQ_TIMEOUT);
  CHECK(tu_now_ms() - t0 >= 55);
  CHECK(job == sentinel);
  CHECK(jobq_last_error()[0] == '\0');
  CHECK_STATUS(jobq_reserve_any(q, ab, 2, 0, &job), JOBQ_TIMEOUT);
  for (int i = 0; i < 2; i++) {
    struct later l = {q, ab[i], 50, 0, 0};
    job = woken_by(q, ab, 2, &l);
    CHECK(job != NULL && jobq_job_id(job) == l.id);
    CHECK(job != NULL && strcmp(jobq_job_queue(job), ab[i]) == 0);
    tu_ack_free(job);
  }
  /* A paused queue's job is delivered once it is resumed. */
  {
    uint64_t id = put_pri(q, "w-b", 0);
    struct later l = {q, "w-b", 50, 1, 0};
    CHECK_OK(jobq_pause(q, "w-b"));
    CHECK_STATUS(jobq_reserve_any(q, ab, 2, 30, &job), JOBQ_TIMEOUT);
    job = woken_by(q, ab, 2, &l);
    CHECK(job != NULL && jobq_job_id(job) == id);
    tu_ack_free(job);
  }
  /* A kick of a buried job wakes it too. */
  {
    uint64_t id = put_pri(q, "w-a", 0);
    struct later l = {q, "w-a", 50, 2, id};
    job = tu_reserve(q, "w-a", 0);
    CHECK_OK(jobq_bury(job, "later"));
    jobq_job_free(job);
    job = woken_by(q, ab, 2, &l);
    CHECK(job != NULL && jobq_job_id(job) == id);
    tu_ack_free(job);
  }
}

/* Pause and limits hold: such a queue's job is passed over for the next. */
static void test_pause_and_limits(jobq *q) {
  const char *queues[] = {"p-paused", "p-limited", "p-plain"};
  uint64_t paused = put_pri(q, "p-paused", -10);
  uint64_t lim1 = put_pri(q, "p-limited", -5);
  uint64_t lim2 = put_pri(q, "p-limited", -5);
  uint64_t plain = put_pri(q, "p-plain", 0);
  jobq_job *first, *second, *job = NULL;
  CHECK_OK(jobq_pause(q, "p-paused"));
  CHECK_OK(jobq_queue_config(q, "p-limited", "{\"max_reserved\":1}"));
  first = reserve_any(q, queues, 3, 0);
  CHECK(first != NULL && jobq_job_id(first) == lim1);
  second = reserve_any(q, queues, 3, 0);
  CHECK(second != NULL && jobq_job_id(second) == plain);
  CHECK_STATUS(jobq_reserve_any(q, queues, 3, 0, &job), JOBQ_TIMEOUT);
  /* A paused queue, a full one, an empty one: nothing, however long one waits. */
  tu_ack_free(second);
  CHECK_STATUS(jobq_reserve_any(q, queues, 3, 30, &job), JOBQ_TIMEOUT);
  tu_ack_free(first);
  job = reserve_any(q, queues, 3, 0);
  CHECK(job != NULL && jobq_job_id(job) == lim2);
  tu_ack_free(job);
  CHECK_OK(jobq_resume(q, "p-paused"));
  job = reserve_any(q, queues, 3, 0);
  CHECK(job != NULL && jobq_job_id(job) == paused);
  tu_ack_free(job);
}

/* release/bury with a priority change the order of later reserves. */
static void test_release_bury_priority(jobq *q) {
  const char *r[] = {"r"};
  uint64_t got[8], want[3];
  uint64_t a = put_pri(q, "r", 0);
  uint64_t b = put_pri(q, "r", 0);
  uint64_t c = put_pri(q, "r", 0);
  jobq_job *job = tu_reserve(q, "r", 0);
  if (job == NULL) {
    return;
  }
  CHECK(jobq_job_id(job) == a);
  CHECK_OK(jobq_release_priority(job, 0, 10));
  CHECK_STATUS(jobq_release_priority(job, 0, 1), JOBQ_E_STATE);
  CHECK_STATUS(jobq_bury_priority(job, NULL, 1), JOBQ_E_STATE);
  jobq_job_free(job);
  CHECK(peek(q, "r", "ready") == b);
  /* b buried with priority -5, then kicked: it comes first. */
  job = tu_reserve(q, "r", 0);
  CHECK(job != NULL && jobq_job_id(job) == b);
  CHECK_OK(jobq_bury_priority(job, "held back", -5));
  jobq_job_free(job);
  CHECK(peek(q, "r", "dead") == b);
  CHECK(peek(q, "r", "ready") == c);
  CHECK_OK(jobq_kick_job(q, b));
  CHECK(peek(q, "r", "ready") == b);
  want[0] = b;
  want[1] = c;
  want[2] = a;
  CHECK(drain(q, r, 1, got, 8) == 3);
  CHECK(memcmp(got, want, sizeof want) == 0);
  /* A release with a delay and a priority: scheduled, then first. */
  a = put_pri(q, "r", 0);
  b = put_pri(q, "r", 0);
  job = tu_reserve(q, "r", 0);
  CHECK(job != NULL && jobq_job_id(job) == a);
  CHECK_OK(jobq_release_priority(job, 60000, INT32_MIN));
  jobq_job_free(job);
  CHECK(peek(q, "r", "scheduled") == a);
  CHECK_OK(jobq_kick_job(q, a));
  want[0] = a;
  want[1] = b;
  CHECK(drain(q, r, 1, got, 8) == 2);
  CHECK(memcmp(got, want, 2 * sizeof want[0]) == 0);
  /* A delay out of range changes nothing: the delivery is still ours. */
  a = put_pri(q, "r", 3);
  job = tu_reserve(q, "r", 0);
  CHECK_STATUS(jobq_release_priority(job, UINT64_MAX, 0), JOBQ_E_INVALID_ARG);
  CHECK_OK(jobq_release_priority(job, 0, 0));
  jobq_job_free(job);
  job = tu_reserve(q, "r", 0);
  CHECK(job != NULL && jobq_job_id(job) == a);
  tu_ack_free(job);
}

/* kick_job: dead and scheduled jobs become ready; NOT_FOUND and STATE. */
static void test_kick_job(jobq *q) {
  uint64_t buried = put_pri(q, "k", 0);
  uint64_t delayed;
  jobq_job *job = tu_reserve(q, "k", 0);
  if (job == NULL) {
    return;
  }
  CHECK_STATUS(jobq_kick_job(q, buried), JOBQ_E_STATE); /* reserved */
  CHECK_OK(jobq_bury(job, "no"));
  jobq_job_free(job);
  TU_CHECK_COUNTS(q, "k", 0, 0, 0, 1);
  CHECK_OK(jobq_kick_job(q, buried));
  TU_CHECK_COUNTS(q, "k", 1, 0, 0, 0);
  CHECK_STATUS(jobq_kick_job(q, buried), JOBQ_E_STATE); /* ready */
  CHECK(strstr(jobq_last_error(), "ready") != NULL);
  job = tu_reserve(q, "k", 0);
  CHECK(job != NULL && jobq_job_id(job) == buried);
  CHECK(job != NULL && jobq_job_attempt(job) == 1); /* attempts reset */
  /* Failed: waiting for its backoff, scheduled; kicked, attempts kept. */
  CHECK_OK(jobq_fail(job, "retry"));
  jobq_job_free(job);
  TU_CHECK_COUNTS(q, "k", 0, 1, 0, 0);
  CHECK_OK(jobq_kick_job(q, buried));
  job = tu_reserve(q, "k", 0);
  CHECK(job != NULL && jobq_job_id(job) == buried);
  CHECK(job != NULL && jobq_job_attempt(job) == 2);
  tu_ack_free(job);
  CHECK_STATUS(jobq_kick_job(q, buried), JOBQ_E_NOT_FOUND); /* acked */
  CHECK_STATUS(jobq_kick_job(q, 0), JOBQ_E_NOT_FOUND);
  CHECK_STATUS(jobq_kick_job(q, UINT64_MAX), JOBQ_E_NOT_FOUND);
  /* Delayed: ready at once. */
  delayed = put_delayed(q, "k", 600000);
  TU_CHECK_COUNTS(q, "k", 0, 1, 0, 0);
  CHECK_OK(jobq_kick_job(q, delayed));
  job = tu_reserve(q, "k", 0);
  CHECK(job != NULL && jobq_job_id(job) == delayed);
  CHECK(job != NULL && jobq_job_attempt(job) == 1);
  tu_ack_free(job);
  /* A dead job whose unique key a live job holds stays dead. */
  {
    jobq_put_opts opts;
    uint64_t old_id, new_id;
    jobq_put_opts_init(&opts);
    opts.unique_key = "key";
    old_id = tu_put(q, "k", "o", &opts);
    job = tu_reserve(q, "k", 0);
    CHECK_OK(jobq_bury(job, NULL));
    jobq_job_free(job);
    new_id = tu_put(q, "k", "n", &opts);
    CHECK(new_id != old_id);
    CHECK_STATUS(jobq_kick_job(q, old_id), JOBQ_E_STATE);
    TU_CHECK_COUNTS(q, "k", 1, 0, 0, 1);
    CHECK_OK(jobq_cancel(q, new_id));
    CHECK_OK(jobq_kick_job(q, old_id));
    CHECK_OK(jobq_cancel(q, old_id));
  }
  TU_CHECK_COUNTS(q, "k", 0, 0, 0, 0);
}

/* peek: the next job of each state, leasing nothing; NOT_FOUND leaves
 * *out_id alone. */
static void test_peek(jobq *q) {
  uint64_t id = 4242;
  uint64_t a, b, c, later, sooner;
  jobq_job *jb, *jc;
  CHECK_STATUS(jobq_peek(q, "pk", "ready", &id), JOBQ_E_NOT_FOUND);
  CHECK(jobq_last_error()[0] != '\0');
  CHECK_STATUS(jobq_peek(q, "pk", "scheduled", &id), JOBQ_E_NOT_FOUND);
  CHECK_STATUS(jobq_peek(q, "pk", "dead", &id), JOBQ_E_NOT_FOUND);
  CHECK(id == 4242);
  a = put_pri(q, "pk", 5);
  b = put_pri(q, "pk", 1);
  c = put_pri(q, "pk", 1);
  put_pri(q, "pk-other", -9);
  CHECK(peek(q, "pk", "ready") == b);
  CHECK(peek(q, "pk", "ready") == b); /* still there: nothing leased */
  TU_CHECK_COUNTS(q, "pk", 3, 0, 0, 0);
  CHECK(jobq_last_error()[0] == '\0');
  CHECK_OK(jobq_pause(q, "pk"));
  CHECK(peek(q, "pk", "ready") == b); /* a paused queue is peeked too */
  CHECK_OK(jobq_resume(q, "pk"));
  later = put_delayed(q, "pk", 600000);
  sooner = put_delayed(q, "pk", 300000);
  CHECK(peek(q, "pk", "scheduled") == sooner);
  jb = tu_reserve(q, "pk", 0);
  jc = tu_reserve(q, "pk", 0);
  CHECK(jb != NULL && jobq_job_id(jb) == b);
  CHECK(jc != NULL && jobq_job_id(jc) == c);
  CHECK(peek(q, "pk", "ready") == a);
  /* Dead: the one that died first, whatever its id. */
  CHECK_OK(jobq_bury(jc, NULL));
  tu_sleep_ms(5);
  CHECK_OK(jobq_bury(jb, NULL));
  jobq_job_free(jb);
  jobq_job_free(jc);
  CHECK(peek(q, "pk", "dead") == c);
  CHECK_OK(jobq_kick_job(q, c));
  CHECK(peek(q, "pk", "dead") == b);
  /* Bad states and arguments. */
  id = 4242;
  CHECK_STATUS(jobq_peek(q, "pk", "reserved", &id), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_peek(q, "pk", "done", &id), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_peek(q, "pk", "READY", &id), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_peek(q, "pk", "", &id), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_peek(q, "pk", "buried", &id), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "buried") != NULL);
  CHECK_STATUS(jobq_peek(q, "pk", "\xff", &id), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_peek(q, "pk", NULL, &id), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_peek(q, NULL, "ready", &id), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_peek(q, "", "ready", &id), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_peek(q, "pk", "ready", NULL), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_peek(NULL, "pk", "ready", &id), JOBQ_E_INVALID_ARG);
  CHECK(id == 4242);
  CHECK_OK(jobq_cancel(q, later));
}

/* Bad input to reserve_any: refused before anything is leased. */
static void test_bad_input(jobq *q) {
  const char *names[JOBQ_RESERVE_ANY_MAX + 1];
  char bufs[JOBQ_RESERVE_ANY_MAX + 1][16];
  char long_name[1100];
  jobq_job *job = NULL;
  uint64_t id = put_pri(q, "bad", 0);
  size_t i;
  for (i = 0; i <= JOBQ_RESERVE_ANY_MAX; i++) {
    snprintf(bufs[i], sizeof bufs[i], "bad-%u", (unsigned)i);
    names[i] = bufs[i];
  }
  names[0] = "bad";
  CHECK_STATUS(jobq_reserve_any(q, NULL, 1, 0, &job), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "queues") != NULL);
  CHECK_STATUS(jobq_reserve_any(q, names, 0, 0, &job), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_reserve_any(q, NULL, 0, 0, &job), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_reserve_any(q, names, JOBQ_RESERVE_ANY_MAX + 1, 0, &job),
               JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_reserve_any(q, names, (size_t)-1, 0, &job), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_reserve_any(q, names, 1, 0, NULL), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_reserve_any(NULL, names, 1, 0, &job), JOBQ_E_INVALID_ARG);
  {
    const char *with_null[] = {"bad", NULL};
    const char *with_empty[] = {"bad", ""};
    const char *with_utf8[] = {"bad", "\xc3\x28"};
    const char *with_long[] = {long_name, "bad"};
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    CHECK_STATUS(jobq_reserve_any(q, with_null, 2, 0, &job), JOBQ_E_INVALID_ARG);
    CHECK(strstr(jobq_last_error(), "queues[1]") != NULL);
    CHECK_STATUS(jobq_reserve_any(q, with_empty, 2, 0, &job), JOBQ_E_INVALID_ARG);
    CHECK(strstr(jobq_last_error(), "queues[1]") != NULL);
    CHECK_STATUS(jobq_reserve_any(q, with_utf8, 2, 0, &job), JOBQ_E_INVALID_ARG);
    CHECK_STATUS(jobq_reserve_any(q, with_long, 2, -1, &job), JOBQ_E_INVALID_ARG);
    CHECK(strstr(jobq_last_error(), "queues[0]") != NULL);
  }
  CHECK(job == NULL);
  TU_CHECK_COUNTS(q, "bad", 1, 0, 0, 0);
  /* The largest list is fine. */
  job = reserve_any(q, names, JOBQ_RESERVE_ANY_MAX, 0);
  CHECK(job != NULL && jobq_job_id(job) == id);
  /* The job calls take a NULL or spent handle as jobq_release does. */
  CHECK_STATUS(jobq_release_priority(NULL, 0, 1), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_bury_priority(NULL, "x", 1), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_bury_priority(job, "\xff", 1), JOBQ_E_INVALID_ARG);
  tu_ack_free(job);
  CHECK_STATUS(jobq_release_priority(job, 0, 1), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_bury_priority(job, NULL, 1), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_kick_job(NULL, id), JOBQ_E_INVALID_ARG);
}

/* A closed handle is JOBQ_E_HANDLE for every new call. */
static void test_closed_handle(const char *dir) {
  const char *one[] = {"c"};
  jobq *q = tu_open(dir, "closed.db", CFG);
  jobq_job *job = NULL;
  uint64_t id = 7;
  CHECK_OK(jobq_close(q));
  CHECK_STATUS(jobq_reserve_any(q, one, 1, 0, &job), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_kick_job(q, 1), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_peek(q, "c", "ready", &id), JOBQ_E_HANDLE);
  CHECK(job == NULL && id == 7);
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  jobq *q;
  tu_watchdog();
  q = tu_open(dir, "ops.db", CFG);
  test_order_across_queues(q);
  test_due_jobs(q);
  test_waits_and_wakeups(q);
  test_pause_and_limits(q);
  test_release_bury_priority(q);
  test_kick_job(q);
  test_peek(q);
  test_bad_input(q);
  CHECK_OK(jobq_close(q));
  test_closed_handle(dir);
  return check_finish("test_beanstalk_ops");
}
