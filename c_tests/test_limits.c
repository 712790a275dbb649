/* jobq_queue_config: per-queue limits. Bad input is refused with a message
 * and stores nothing; max_reserved caps the jobs reserved at once (a
 * reserve at the cap waits, an ack frees a slot and wakes it), also for
 * jobq_reserve_many and jobq_ack_reserve; a rate lets N deliveries through
 * per window and a reserve waits for the window's end (not its whole
 * timeout), as a watch's next-due says; limits are stored and shown in the
 * stats; several processes running worker pools and reserve loops never
 * exceed the cap together (counted in shared memory).
 * argv[1] = a fresh directory (on the PostgreSQL pass, stores are schemas). */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"

static const char *CFG;

/* The stats JSON text (free with jobq_string_free), or NULL. */
static char *stats_of(jobq *q) {
  char *json = NULL;
  if (jobq_stats_json(q, &json) != JOBQ_OK) {
    return NULL;
  }
  return json;
}

/* Whether the stats object of `queue` contains `text`; -1 if the queue is
 * not listed. */
static int queue_has(jobq *q, const char *queue, const char *text) {
  char *json = stats_of(q);
  const char *queues, *queues_end, *obj, *obj_end, *p;
  int found = -1;
  if (json == NULL) {
    return -2;
  }
  queues = tu_json_object(json, "queues", &queues_end);
  obj = queues != NULL ? tu_json_object(queues, queue, &obj_end) : NULL;
  if (obj != NULL && obj < queues_end) {
    p = strstr(obj, text);
    found = p != NULL && p < obj_end;
  }
  jobq_string_free(json);
  return found;
}

static void expect_invalid(jobq *q, const char *queue, const char *json, const char *msg_part) {
  jobq_status st = jobq_queue_config(q, queue, json);
  CHECK_STATUS(st, JOBQ_E_INVALID_ARG);
  if (strstr(jobq_last_error(), msg_part) == NULL) {
    fprintf(stderr, "  config %s: message %s lacks %s\n", json ? json : "NULL", jobq_last_error(), msg_part);
    CHECK(0);
  }
}

/* ---- bad input ---------------------------------------------------------- */

static void test_bad_input(const char *dir) {
  jobq *q = tu_open(dir, "bad.db", CFG);
  char long_name[1100];
  memset(long_name, 'n', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';

  CHECK_STATUS(jobq_queue_config(NULL, "a", "{}"), JOBQ_E_INVALID_ARG);
  expect_invalid(q, NULL, "{}", "queue");
  expect_invalid(q, "", "{\"max_reserved\":1}", "empty");
  expect_invalid(q, long_name, "{\"max_reserved\":1}", "longer");
  expect_invalid(q, "a", NULL, "json");
  expect_invalid(q, "a", "", "JSON");
  expect_invalid(q, "a", "{\"max_reserved\":", "JSON");
  expect_invalid(q, "a", "[1]", "object");
  expect_invalid(q, "a", "{\"concurrency\":2}", "concurrency");
  expect_invalid(q, "a", "{\"max_reserved\":0}", "max_reserved");
  expect_invalid(q, "a", "{\"max_reserved\":-3}", "max_reserved");
  expect_invalid(q, "a", "{\"max_reserved\":1.5}", "max_reserved");
  expect_invalid(q, "a", "{\"max_reserved\":\"2\"}", "max_reserved");
  expect_invalid(q, "a", "{\"rate\":5}", "rate");
  expect_invalid(q, "a", "{\"rate\":{\"jobs\":5}}", "rate");
  expect_invalid(q, "a", "{\"rate\":{\"per_ms\":5}}", "rate");
  expect_invalid(q, "a", "{\"rate\":{\"jobs\":0,\"per_ms\":5}}", "rate.jobs");
  expect_invalid(q, "a", "{\"rate\":{\"jobs\":1,\"per_ms\":-1}}", "rate.per_ms");
  expect_invalid(q, "a", "{\"rate\":{\"jobs\":1,\"per_ms\":10,\"burst\":3}}", "burst");
  /* A valid key beside a bad one: nothing stored either. */
  expect_invalid(q, "a", "{\"max_reserved\":2,\"rate\":{\"jobs\":0,\"per_ms\":5}}", "rate.jobs");
  /* Nothing was recorded: the queue is not even listed. */
  CHECK(queue_has(q, "a", "limits") == -1);
  CHECK_OK(jobq_close(q));
  CHECK_STATUS(jobq_queue_config(q, "a", "{}"), JOBQ_E_HANDLE);
}

/* ---- max_reserved ------------------------------------------------------- */

struct blocked {
  jobq *q;
  jobq_status st;
  jobq_job *job;
  int64_t returned_at;
};

static void *reserve_blocked(void *arg) {
  struct blocked *b = arg;
  b->st = jobq_reserve(b->q, "cap", 3 * TU_MUST_MS, &b->job);
  b->returned_at = tu_now_ms();
  return NULL;
}

static void test_max_reserved(const char *dir) {
  jobq *q = tu_open(dir, "cap.db", CFG);
  jobq_job *a, *b, *c = NULL, *many[8];
  size_t n = 0;
  int i;
  struct blocked bl = {q, JOBQ_OK, NULL, 0};
  pthread_t t;
  int64_t acked_at;

  for (i = 0; i < 6; i++) {
    tu_put(q, "cap", "job", NULL);
  }
  tu_put(q, "free", "other queue", NULL);
  CHECK_OK(jobq_queue_config(q, "cap", "{\"max_reserved\":2}"));
  CHECK(queue_has(q, "cap", "\"limits\":{\"max_reserved\":2}") == 1);
  CHECK(queue_has(q, "free", "limits") == 0);
  a = tu_reserve(q, "cap", 0);
  b = tu_reserve(q, "cap", 0);
  /* The third waits like on an empty queue and times out. */
  tu_expect_nothing(q, "cap", 0);
  tu_expect_nothing(q, "cap", TU_SCALE(60));
  TU_CHECK_COUNTS(q, "cap", 4, 0, 2, 0);
  /* reserve_many respects the cap too. */
  CHECK_STATUS(jobq_reserve_many(q, "cap", 8, 0, many, &n), JOBQ_TIMEOUT);
  CHECK(n == 0);
  /* Other queues are not limited. */
  tu_ack_free(tu_reserve(q, "free", 0));

  /* A reserve blocked at the cap wakes when an ack frees a slot. */
  CHECK(pthread_create(&t, NULL, reserve_blocked, &bl) == 0);
  tu_sleep_ms(TU_SCALE(50));
  acked_at = tu_now_ms();
  tu_ack_free(a);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK_OK(bl.st);
  CHECK(bl.job != NULL);
  CHECK(bl.returned_at - acked_at < TU_MUST_MS);
  printf("ack -> blocked reserve at the cap done in %lld ms\n", (long long)(bl.returned_at - acked_at));
  TU_CHECK_COUNTS(q, "cap", 3, 0, 2, 0);

  /* jobq_ack_reserve: the ack frees the slot the next job takes. */
  CHECK_OK(jobq_ack_reserve(b, "cap", 0, &c));
  jobq_job_free(b);
  CHECK(c != NULL);
  TU_CHECK_COUNTS(q, "cap", 2, 0, 2, 0);
  tu_expect_nothing(q, "cap", 0);

  /* Raising the cap lets reserve_many take more, but only up to it. */
  CHECK_OK(jobq_queue_config(q, "cap", "{\"max_reserved\":3}"));
  CHECK_OK(jobq_reserve_many(q, "cap", 8, 0, many, &n));
  CHECK(n == 1);
  for (i = 0; i < (int)n; i++) {
    tu_ack_free(many[i]);
  }
  n = 0;
  /* {} keeps the cap; null removes it. */
  CHECK_OK(jobq_queue_config(q, "cap", "{}"));
  CHECK(queue_has(q, "cap", "\"max_reserved\":3") == 1);
  CHECK_OK(jobq_queue_config(q, "cap", "{\"max_reserved\":null}"));
  CHECK(queue_has(q, "cap", "limits") == 0);
  CHECK_OK(jobq_reserve_many(q, "cap", 8, 0, many, &n));
  CHECK(n == 1);
  for (i = 0; i < (int)n; i++) {
    tu_ack_free(many[i]);
  }
  tu_ack_free(bl.job);
  tu_ack_free(c);
  TU_CHECK_COUNTS(q, "cap", 0, 0, 0, 0);
  CHECK_OK(jobq_close(q));
}

/* Expired leases do not count against the cap. */
static void test_expired_leases_free_slots(const char *dir) {
  jobq *q = tu_open(dir, "expiry.db", CFG);
  jobq_put_opts opts;
  jobq_job *held, *next;
  int64_t start;
  jobq_put_opts_init(&opts);
  opts.lease_ms = (uint64_t)TU_SCALE(150);
  tu_put(q, "e", "short lease", &opts);
  tu_put(q, "e", "waits for the slot", NULL);
  CHECK_OK(jobq_queue_config(q, "e", "{\"max_reserved\":1}"));
  held = tu_reserve(q, "e", 0);
  tu_expect_nothing(q, "e", 0);
  /* The waiter's next-due is the lease's end: it is not woken by anything else. */
  start = tu_now_ms();
  next = tu_reserve(q, "e", 3 * TU_MUST_MS);
  CHECK(tu_now_ms() - start < TU_MUST_MS);
  if (next != NULL) {
    /* The expired job went back to ready and came first (smaller id), or the other one. */
    CHECK(tu_payload_is(next, "short lease") || tu_payload_is(next, "waits for the slot"));
  }
  jobq_job_free(held);
  tu_ack_free(next);
  CHECK_OK(jobq_close(q));
}

/* ---- rate --------------------------------------------------------------- */

static void test_rate(const char *dir) {
  jobq *q = tu_open(dir, "rate.db", CFG);
  int64_t per = TU_SCALE(300), first_at, start, waited;
  jobq_job *jobs[3], *late = NULL, *many[8];
  jobq_watch *w = NULL;
  int64_t due = -2;
  size_t n = 0;
  int i;

  for (i = 0; i < 10; i++) {
    tu_put(q, "r", "job", NULL);
  }
  CHECK_OK(jobq_queue_config(q, "r", tu_cfg("{\"rate\":{\"jobs\":3,\"per_ms\":%lld}}", (long long)per)));
  CHECK(queue_has(q, "r", tu_cfg("\"limits\":{\"rate\":{\"jobs\":3,\"per_ms\":%lld}}", (long long)per)) == 1);
  CHECK(queue_has(q, "r", "\"rate_used\":0") == 1);
  first_at = tu_now_ms();
  for (i = 0; i < 3; i++) {
    jobs[i] = tu_reserve(q, "r", 0);
  }
  tu_expect_nothing(q, "r", 0);
  CHECK(queue_has(q, "r", "\"rate_used\":3") == 1);
  /* A watch's next-due is the window's end. */
  CHECK_OK(jobq_watch_open(q, "r", &w));
  CHECK_OK(jobq_watch_consume(w, &due));
  CHECK(due > 0 && due <= per);
  CHECK_OK(jobq_watch_close(w));
  /* Acks free no deliveries of the window. */
  for (i = 0; i < 3; i++) {
    tu_ack_free(jobs[i]);
  }
  tu_expect_nothing(q, "r", 0);
  /* A reserve waits for the window's end, not its whole timeout. */
  start = tu_now_ms();
  CHECK_OK(jobq_reserve(q, "r", 3 * TU_MUST_MS, &late));
  waited = tu_now_ms() - start;
  CHECK(late != NULL);
  CHECK(tu_now_ms() - first_at >= per - 5);
  CHECK(waited < TU_MUST_MS);
  printf("rate 3/%lld ms: the 4th delivery came %lld ms after the 1st\n", (long long)per,
         (long long)(tu_now_ms() - first_at));
  tu_ack_free(late);
  /* The new window has 2 left: reserve_many takes exactly those. */
  CHECK_OK(jobq_reserve_many(q, "r", 8, 0, many, &n));
  CHECK(n == 2);
  for (i = 0; i < (int)n; i++) {
    tu_ack_free(many[i]);
  }
  tu_expect_nothing(q, "r", 0);
  /* null removes the rate: the rest comes at once. */
  CHECK_OK(jobq_queue_config(q, "r", "{\"rate\":null}"));
  CHECK(queue_has(q, "r", "rate_used") == 0);
  CHECK_OK(jobq_reserve_many(q, "r", 8, 0, many, &n));
  CHECK(n == 4);
  for (i = 0; i < (int)n; i++) {
    tu_ack_free(many[i]);
  }
  CHECK_OK(jobq_close(q));
}

/* ---- stored ------------------------------------------------------------- */

static void test_persists(const char *dir) {
  jobq *q = tu_open(dir, "persist.db", CFG);
  /* A queue never used is recorded by its limits. */
  CHECK_OK(jobq_queue_config(q, "new", "{\"max_reserved\":5,\"rate\":{\"jobs\":7,\"per_ms\":1000}}"));
  CHECK_OK(jobq_close(q));
  q = tu_open(dir, "persist.db", CFG);
  CHECK(queue_has(q, "new", "\"limits\":{\"max_reserved\":5,\"rate\":{\"jobs\":7,\"per_ms\":1000}}") == 1);
  CHECK(queue_has(q, "new", "\"rate_used\":0") == 1);
  /* Keys not given keep their value. */
  CHECK_OK(jobq_queue_config(q, "new", "{\"max_reserved\":null}"));
  CHECK(queue_has(q, "new", "\"limits\":{\"rate\":{\"jobs\":7,\"per_ms\":1000}}") == 1);
  CHECK_OK(jobq_queue_config(q, "new", "{\"rate\":null}"));
  CHECK(queue_has(q, "new", "limits") == 0);
  CHECK_OK(jobq_close(q));
}

/* ---- processes ---------------------------------------------------------- */

#define PROC_JOBS 60
#define PROC_CAP 3

struct shared_counts {
  int running;
  int max_running;
  int done;
};

static struct shared_counts *SHM;

static void enter(void) {
  int now = __atomic_add_fetch(&SHM->running, 1, __ATOMIC_SEQ_CST);
  int seen = __atomic_load_n(&SHM->max_running, __ATOMIC_SEQ_CST);
  while (now > seen &&
         !__atomic_compare_exchange_n(&SHM->max_running, &seen, now, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
}

static void leave(void) {
  __atomic_sub_fetch(&SHM->running, 1, __ATOMIC_SEQ_CST);
  __atomic_add_fetch(&SHM->done, 1, __ATOMIC_SEQ_CST);
}

static jobq_outcome handler(const jobq_job *job, void *user) {
  (void)job;
  (void)user;
  enter();
  tu_sleep_ms(3);
  leave();
  return JOBQ_DONE;
}

static int all_done(void) {
  return __atomic_load_n(&SHM->done, __ATOMIC_SEQ_CST) >= PROC_JOBS;
}

/* Child `kind`: 0 and 1 run a worker pool of 4 handler threads, 2 a loop
 * of jobq_reserve_many(4), 3 a loop of jobq_reserve + jobq_ack_reserve. */
static void child_run(const char *path, int kind, int fd) {
  jobq *q = NULL;
  tu_child_begin();
  CHECK_OK(jobq_open(path, CFG, &q));
  if (q != NULL && kind <= 1) {
    jobq_worker_opts opts;
    jobq_worker *w = NULL;
    jobq_worker_opts_init(&opts);
    opts.concurrency = 4;
    CHECK_OK(jobq_worker_start(q, "p", &opts, handler, NULL, &w));
    while (!all_done()) {
      tu_sleep_ms(5);
    }
    CHECK_OK(jobq_worker_stop(w, TU_MUST_MS));
  } else if (q != NULL && kind == 2) {
    while (!all_done()) {
      jobq_job *jobs[4];
      size_t n = 0, i;
      jobq_status st = jobq_reserve_many(q, "p", 4, TU_SCALE(20), jobs, &n);
      CHECK(st == JOBQ_OK || st == JOBQ_TIMEOUT);
      for (i = 0; i < n; i++) {
        enter();
      }
      tu_sleep_ms(3);
      for (i = 0; i < n; i++) {
        leave();
      }
      if (n > 0) {
        CHECK_OK(jobq_ack_many(jobs, n, NULL));
      }
      for (i = 0; i < n; i++) {
        jobq_job_free(jobs[i]);
      }
    }
  } else if (q != NULL) {
    jobq_job *job = NULL;
    while (!all_done()) {
      jobq_status st;
      if (job == NULL) {
        st = jobq_reserve(q, "p", TU_SCALE(20), &job);
        CHECK(st == JOBQ_OK || st == JOBQ_TIMEOUT);
        continue;
      }
      enter();
      tu_sleep_ms(3);
      leave();
      {
        jobq_job *next = NULL;
        st = jobq_ack_reserve(job, "p", TU_SCALE(20), &next);
        CHECK(st == JOBQ_OK || st == JOBQ_TIMEOUT);
        jobq_job_free(job);
        job = next;
      }
    }
    if (job != NULL) {
      /* Came after the last count: give it back. */
      CHECK_OK(jobq_release(job, 0));
      jobq_job_free(job);
    }
  }
  if (q != NULL) {
    CHECK_OK(jobq_close(q));
  }
  tu_child_report(fd);
}

static void test_processes(const char *dir) {
  char path[4096];
  jobq *q = tu_open(dir, "procs.db", CFG);
  int pipes[4][2];
  pid_t pids[4];
  int i;
  int64_t start;

  SHM = mmap(NULL, sizeof *SHM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(SHM != MAP_FAILED);
  if (SHM == MAP_FAILED) {
    return;
  }
  memset(SHM, 0, sizeof *SHM);
  snprintf(path, sizeof path, "%s", check_path(dir, "procs.db"));
  CHECK_OK(jobq_queue_config(q, "p", tu_cfg("{\"max_reserved\":%d}", PROC_CAP)));
  for (i = 0; i < PROC_JOBS; i++) {
    tu_put(q, "p", "job", NULL);
  }
  start = tu_now_ms();
  fflush(stdout);
  fflush(stderr);
  for (i = 0; i < 4; i++) {
    CHECK(pipe(pipes[i]) == 0);
    pids[i] = fork();
    CHECK(pids[i] >= 0);
    if (pids[i] == 0) {
      close(pipes[i][0]);
      child_run(path, i, pipes[i][1]);
      _exit(0);
    }
    close(pipes[i][1]);
  }
  for (i = 0; i < 4; i++) {
    unsigned char verdict = 0;
    int status = 0;
    CHECK(read(pipes[i][0], &verdict, 1) == 1);
    CHECK(verdict == TU_CHILD_PASSED);
    close(pipes[i][0]);
    if (pids[i] > 0) {
      CHECK(waitpid(pids[i], &status, 0) == pids[i]);
      CHECK(WIFEXITED(status));
    }
  }
  printf("4 processes, cap %d: %d jobs in %lld ms, at most %d handlers at once\n", PROC_CAP, SHM->done,
         (long long)(tu_now_ms() - start), SHM->max_running);
  CHECK(SHM->done >= PROC_JOBS);
  CHECK(SHM->max_running <= PROC_CAP);
  CHECK(SHM->max_running >= 1);
  TU_CHECK_COUNTS(q, "p", 0, 0, 0, 0);
  munmap(SHM, sizeof *SHM);
  CHECK_OK(jobq_close(q));
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  tu_watchdog();
  CFG = tu_cfg("{\"durability\":\"normal\",\"lease_ms\":%lld}", (long long)TU_SCALE(10000));
  test_bad_input(dir);
  test_max_reserved(dir);
  test_expired_leases_free_slots(dir);
  test_rate(dir);
  test_persists(dir);
  test_processes(dir);
  return check_finish("test_limits");
}
