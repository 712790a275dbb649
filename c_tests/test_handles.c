/* Handles are tokens checked on every call: bogus values, handles of the
 * wrong type, closed queues, freed jobs and stopped workers give
 * JOBQ_E_HANDLE (void functions do nothing, accessors return 0/NULL), never
 * a crash. Also: jobs of a closed queue (JOBQ_E_SHUTDOWN), close while a
 * worker runs (JOBQ_E_BUSY), and the thread-local jobq_last_error(). */
#include <pthread.h>

#include "testutil.h"

#define BOGUS_Q ((jobq *)(uintptr_t)0x1234)
#define BOGUS_JOB ((jobq_job *)(uintptr_t)0x1234)
#define BOGUS_W ((jobq_worker *)(uintptr_t)0x1234)
#define ID_SENTINEL ((uint64_t)0xdeadbeefcafeULL)

static int sentinel_storage;

static jobq_outcome done_handler(const jobq_job *job, void *user_data) {
  (void)job;
  (void)user_data;
  return JOBQ_DONE;
}

/* NULL handles may be reported either way; both are documented meanings. */
#define CHECK_NULL_HANDLE(expr)                                                \
  do {                                                                         \
    int st_ = (int)(expr);                                                     \
    CHECK(st_ == JOBQ_E_INVALID_ARG || st_ == JOBQ_E_HANDLE);                  \
    if (st_ != JOBQ_E_INVALID_ARG && st_ != JOBQ_E_HANDLE) {                   \
      fprintf(stderr, "  %s gave %s\n", #expr, jobq_status_str(st_));          \
    }                                                                          \
  } while (0)

/* Every queue-taking call with a queue handle that is not a live queue. */
static void expect_dead_queue(jobq *q, const char *what) {
  uint64_t id = ID_SENTINEL;
  uint64_t ids[1] = {ID_SENTINEL};
  jobq_job *job = (jobq_job *)&sentinel_storage;
  char *json = (char *)&sentinel_storage;
  jobq_worker *w = (jobq_worker *)&sentinel_storage;
  jobq_payload item;
  int before = check_failures;
  item.data = "x";
  item.len = 1;

  CHECK_STATUS(jobq_put(q, "h", "x", 1, NULL, &id), JOBQ_E_HANDLE);
  CHECK(jobq_last_error()[0] != '\0');
  CHECK_STATUS(jobq_put_batch(q, "h", &item, 1, NULL, ids), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_reserve(q, "h", 0, &job), JOBQ_E_HANDLE);
  /* A closed queue must not block a waiting reserve forever either. */
  CHECK_STATUS(jobq_reserve(q, "h", -1, &job), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_kick(q, "h", 10, &id), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_pause(q, "h"), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_resume(q, "h"), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_cancel(q, 1), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_stats_json(q, &json), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_worker_start(q, "h", NULL, done_handler, NULL, &w),
               JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_close(q), JOBQ_E_HANDLE);
  CHECK(id == ID_SENTINEL && ids[0] == ID_SENTINEL);
  CHECK(job == (jobq_job *)&sentinel_storage);
  CHECK(json == (char *)&sentinel_storage);
  CHECK(w == (jobq_worker *)&sentinel_storage);
  if (check_failures != before) {
    fprintf(stderr, "  (queue handle: %s)\n", what);
  }
}

/* Every job-taking call with a job handle that is not a live job. */
static void expect_dead_job(jobq_job *job, const char *what) {
  size_t len = 4242;
  int before = check_failures;
  CHECK_STATUS(jobq_ack(job), JOBQ_E_HANDLE);
  CHECK(jobq_last_error()[0] != '\0');
  CHECK_STATUS(jobq_fail(job, "r"), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_release(job, 0), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_touch(job, 0), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_bury(job, "r"), JOBQ_E_HANDLE);
  CHECK(jobq_job_id(job) == 0);
  CHECK(jobq_job_queue(job) == NULL);
  CHECK(jobq_job_payload(job, &len) == NULL);
  CHECK(len == 4242);
  CHECK(jobq_job_attempt(job) == 0);
  jobq_job_free(job);
  if (check_failures != before) {
    fprintf(stderr, "  (job handle: %s)\n", what);
  }
}

static void test_bogus_values(void) {
  expect_dead_queue(BOGUS_Q, "0x1234");
  expect_dead_job(BOGUS_JOB, "0x1234");
  CHECK_STATUS(jobq_worker_stop(BOGUS_W, 0), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_worker_stop(BOGUS_W, -1), JOBQ_E_HANDLE);
}

static void test_null_handles(void) {
  uint64_t id = ID_SENTINEL;
  jobq_job *job = NULL;
  char *json = NULL;
  jobq_worker *w = NULL;
  size_t len = 4242;
  jobq_payload item;
  item.data = "x";
  item.len = 1;

  CHECK_NULL_HANDLE(jobq_close(NULL));
  CHECK_NULL_HANDLE(jobq_put(NULL, "h", "x", 1, NULL, &id));
  CHECK_NULL_HANDLE(jobq_put_batch(NULL, "h", &item, 1, NULL, &id));
  CHECK_NULL_HANDLE(jobq_reserve(NULL, "h", 0, &job));
  CHECK_NULL_HANDLE(jobq_kick(NULL, "h", 1, &id));
  CHECK_NULL_HANDLE(jobq_pause(NULL, "h"));
  CHECK_NULL_HANDLE(jobq_resume(NULL, "h"));
  CHECK_NULL_HANDLE(jobq_cancel(NULL, 1));
  CHECK_NULL_HANDLE(jobq_stats_json(NULL, &json));
  CHECK_NULL_HANDLE(
      jobq_worker_start(NULL, "h", NULL, done_handler, NULL, &w));
  CHECK_NULL_HANDLE(jobq_worker_stop(NULL, 0));
  CHECK_NULL_HANDLE(jobq_ack(NULL));
  CHECK_NULL_HANDLE(jobq_fail(NULL, NULL));
  CHECK_NULL_HANDLE(jobq_release(NULL, 0));
  CHECK_NULL_HANDLE(jobq_touch(NULL, 0));
  CHECK_NULL_HANDLE(jobq_bury(NULL, NULL));
  CHECK(id == ID_SENTINEL && job == NULL && json == NULL && w == NULL);
  CHECK(jobq_job_id(NULL) == 0);
  CHECK(jobq_job_queue(NULL) == NULL);
  CHECK(jobq_job_payload(NULL, &len) == NULL);
  CHECK(len == 4242);
  CHECK(jobq_job_attempt(NULL) == 0);
  /* Frees accept NULL, like free(). */
  jobq_job_free(NULL);
  jobq_string_free(NULL);
}

static void test_closed_queue(const char *dir) {
  jobq *q = tu_open(dir, "closed.db", NULL);
  jobq *again;
  tu_put(q, "h", "x", NULL);
  CHECK_OK(jobq_close(q));
  expect_dead_queue(q, "closed");

  /* A new queue handle must not revive the old one, even if the library
   * happens to reuse memory for it. */
  again = tu_open(dir, "closed.db", NULL);
  expect_dead_queue(q, "closed, then another opened");
  CHECK(tu_stat(again, "h", "ready") == 1);
  CHECK_OK(jobq_close(again));
}

static void test_wrong_type(const char *dir) {
  jobq *q = tu_open(dir, "types.db", NULL);
  jobq_worker *w = NULL;
  jobq_job *job;
  tu_put(q, "h", "x", NULL);
  job = tu_reserve(q, "h", 0);
  if (job == NULL) {
    jobq_close(q);
    return;
  }
  /* Each handle is only valid as its own type. */
  expect_dead_queue((jobq *)job, "a jobq_job cast to jobq");
  expect_dead_job((jobq_job *)q, "a jobq cast to jobq_job");
  CHECK_STATUS(jobq_worker_stop((jobq_worker *)q, 0), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_worker_stop((jobq_worker *)job, 0), JOBQ_E_HANDLE);

  CHECK_OK(jobq_worker_start(q, "idle", NULL, done_handler, NULL, &w));
  if (w != NULL) {
    CHECK_STATUS(jobq_close((jobq *)w), JOBQ_E_HANDLE);
    expect_dead_job((jobq_job *)w, "a jobq_worker cast to jobq_job");
    CHECK_OK(jobq_worker_stop(w, -1));
  }
  /* None of the confused calls touched the real objects. */
  CHECK(jobq_job_id(job) != 0);
  tu_ack_free(job);
  CHECK_OK(jobq_close(q));
}

static void test_freed_job(const char *dir) {
  jobq *q = tu_open(dir, "freed.db", NULL);
  jobq_job *first, *second;
  uint64_t second_id;
  tu_put(q, "h", "one", NULL);
  second_id = tu_put(q, "h", "two", NULL);
  first = tu_reserve(q, "h", 0);
  if (first == NULL) {
    jobq_close(q);
    return;
  }
  CHECK_OK(jobq_ack(first));
  jobq_job_free(first);
  expect_dead_job(first, "freed");
  /* A second free of the same handle is a no-op (tested inside too). */
  jobq_job_free(first);

  /* The next job must not be reachable through the stale handle, even if
   * it lands at the same address. */
  second = tu_reserve(q, "h", 0);
  if (second != NULL) {
    expect_dead_job(first, "freed, then another job reserved");
    CHECK(jobq_job_id(second) == second_id);
    CHECK(tu_stat(q, "h", "reserved") == 1);
    tu_ack_free(second);
  }
  CHECK_OK(jobq_close(q));
}

static void test_stopped_worker(const char *dir) {
  jobq *q = tu_open(dir, "stopped.db", NULL);
  jobq_worker *w = NULL;
  jobq_worker *w2 = NULL;
  CHECK_OK(jobq_worker_start(q, "h", NULL, done_handler, NULL, &w));
  CHECK(w != NULL);
  CHECK_OK(jobq_worker_stop(w, -1));
  CHECK_STATUS(jobq_worker_stop(w, -1), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_worker_stop(w, 0), JOBQ_E_HANDLE);
  CHECK_OK(jobq_worker_start(q, "h", NULL, done_handler, NULL, &w2));
  CHECK_STATUS(jobq_worker_stop(w, 0), JOBQ_E_HANDLE);
  if (w2 != NULL) {
    CHECK_OK(jobq_worker_stop(w2, -1));
  }
  CHECK_OK(jobq_close(q));
}

/* Jobs outlive their queue handle as objects, but not as leases. */
static void test_job_of_closed_queue(const char *dir) {
  jobq *q = tu_open(dir, "shutdown.db", NULL);
  jobq_job *jobs[5];
  uint64_t ids[5];
  int i, delivered[5] = {0, 0, 0, 0, 0};
  /* The five are reserved under the file's 30 s lease, so none can expire
   * and be delivered a second time while the others are being reserved
   * (with a short lease, a stall of that length - a loaded machine, a slow
   * fsync, valgrind - made the last reserve take the first job again: it
   * came back later as attempt 3, and the job never reserved as attempt 1).
   * Only once all five are held are the leases cut short, for the wait
   * after reopening; expiring then is harmless, nobody reserves. */
  for (i = 0; i < 5; i++) {
    ids[i] = tu_put(q, "h", "x", NULL);
  }
  for (i = 0; i < 5; i++) {
    jobs[i] = tu_reserve(q, "h", 0);
    if (jobs[i] != NULL) {
      CHECK(jobq_job_id(jobs[i]) == ids[i]);
      CHECK(jobq_job_attempt(jobs[i]) == 1);
    }
  }
  for (i = 0; i < 5; i++) {
    if (jobs[i] != NULL) {
      CHECK_OK(jobq_touch(jobs[i], 50));
    }
  }
  CHECK_OK(jobq_close(q));
  if (jobs[0] != NULL) {
    CHECK_STATUS(jobq_ack(jobs[0]), JOBQ_E_SHUTDOWN);
    CHECK(jobq_last_error()[0] != '\0');
  }
  if (jobs[1] != NULL) {
    CHECK_STATUS(jobq_fail(jobs[1], "r"), JOBQ_E_SHUTDOWN);
  }
  if (jobs[2] != NULL) {
    CHECK_STATUS(jobq_release(jobs[2], 0), JOBQ_E_SHUTDOWN);
  }
  if (jobs[3] != NULL) {
    CHECK_STATUS(jobq_touch(jobs[3], 0), JOBQ_E_SHUTDOWN);
  }
  if (jobs[4] != NULL) {
    CHECK_STATUS(jobq_bury(jobs[4], "r"), JOBQ_E_SHUTDOWN);
  }
  for (i = 0; i < 5; i++) {
    jobq_job_free(jobs[i]);
  }

  /* Nothing was finished: after the leases run out all five come back,
   * each as its second attempt. */
  q = tu_open(dir, "shutdown.db", NULL);
  for (i = 0; i < 5; i++) {
    jobq_job *job = tu_reserve(q, "h", TU_MUST_MS);
    uint64_t id;
    int k;
    if (job == NULL) {
      break;
    }
    id = jobq_job_id(job);
    CHECK(jobq_job_attempt(job) == 2);
    for (k = 0; k < 5; k++) {
      if (ids[k] == id) {
        delivered[k]++;
      }
    }
    if (jobq_job_attempt(job) != 2) {
      fprintf(stderr, "  job %llu came back as attempt %u\n",
              (unsigned long long)id, jobq_job_attempt(job));
    }
    tu_ack_free(job);
  }
  for (i = 0; i < 5; i++) {
    CHECK(delivered[i] == 1);
  }
  TU_CHECK_COUNTS(q, "h", 0, 0, 0, 0);
  CHECK_OK(jobq_close(q));
}

static void test_close_busy(const char *dir) {
  jobq *q = tu_open(dir, "busy.db", NULL);
  jobq_worker *w = NULL;
  CHECK_OK(jobq_worker_start(q, "h", NULL, done_handler, NULL, &w));
  CHECK_STATUS(jobq_close(q), JOBQ_E_BUSY);
  CHECK(jobq_last_error()[0] != '\0');
  /* A refused close leaves the queue fully usable. */
  tu_put(q, "other", "x", NULL);
  CHECK(tu_stat(q, "other", "ready") == 1);
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, -1));
  }
  CHECK_OK(jobq_close(q));
}

/* Copied inside the thread: its last-error text dies with the thread. */
static char thread_error[256];
static int thread_error_null;
static void *fresh_thread(void *arg) {
  const char *msg = jobq_last_error();
  (void)arg;
  thread_error_null = msg == NULL;
  snprintf(thread_error, sizeof thread_error, "%s", msg ? msg : "");
  return NULL;
}

static void test_last_error_is_per_thread(void) {
  pthread_t t;
  char mine[256];
  CHECK_STATUS(jobq_close(BOGUS_Q), JOBQ_E_HANDLE);
  snprintf(mine, sizeof mine, "%s", jobq_last_error());
  CHECK(mine[0] != '\0');
  CHECK(pthread_create(&t, NULL, fresh_thread, NULL) == 0);
  pthread_join(t, NULL);
  /* The other thread never failed a call: it sees "" rather than ours. */
  CHECK(!thread_error_null);
  CHECK(strcmp(thread_error, "") == 0);
  CHECK(strcmp(jobq_last_error(), mine) == 0);
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  tu_watchdog();
  test_bogus_values();
  test_null_handles();
  test_closed_queue(dir);
  test_wrong_type(dir);
  test_freed_job(dir);
  test_stopped_worker(dir);
  test_job_of_closed_queue(dir);
  test_close_busy(dir);
  test_last_error_is_per_thread();
  return check_finish("test_handles");
}
