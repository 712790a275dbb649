/* jobq_pause / jobq_resume: a paused queue accepts puts but delivers
 * nothing, to any process, until resumed; jobs already delivered finish as
 * usual; the pause is stored (it survives close and reopen) and shown in the
 * stats; a resume wakes reserves blocked in this process and in others.
 * argv[1] = a fresh directory (on the PostgreSQL pass, stores are schemas). */
#include <pthread.h>
#include <sys/wait.h>

#include "testutil.h"

static const char *CFG;

/* The "paused" field of one queue in one stats call: 1 true, 0 false,
 * -1 the queue is not listed or has no such field, -2 the call failed. */
static int paused_of(jobq *q, const char *queue) {
  char *json = NULL;
  const char *queues, *queues_end, *obj, *obj_end, *p;
  int result = -1;
  if (jobq_stats_json(q, &json) != JOBQ_OK || json == NULL) {
    return -2;
  }
  queues = tu_json_object(json, "queues", &queues_end);
  obj = queues != NULL ? tu_json_object(queues, queue, &obj_end) : NULL;
  if (obj != NULL && obj < queues_end) {
    p = strstr(obj, "\"paused\":");
    if (p != NULL && p < obj_end) {
      p += strlen("\"paused\":");
      result = strncmp(p, "true", 4) == 0 ? 1 : strncmp(p, "false", 5) == 0 ? 0 : -1;
    }
  }
  jobq_string_free(json);
  return result;
}

/* Every queue in the stats has a "paused" field. */
static int every_queue_has_paused(jobq *q) {
  char *json = NULL;
  const char *p;
  int queues = 0, flags = 0;
  if (jobq_stats_json(q, &json) != JOBQ_OK || json == NULL) {
    return 0;
  }
  for (p = json; (p = strstr(p, "\"dead\":")) != NULL; p++) {
    queues++;
  }
  for (p = json; (p = strstr(p, "\"paused\":")) != NULL; p++) {
    flags++;
  }
  jobq_string_free(json);
  return queues > 0 && queues == flags;
}

static void test_pause_holds_deliveries(const char *dir) {
  jobq *q = tu_open(dir, "basic.db", CFG);
  uint64_t first, id = 0;
  jobq_job *job;

  first = tu_put(q, "a", "a1", NULL);
  tu_put(q, "b", "b1", NULL);
  CHECK(paused_of(q, "a") == 0);
  CHECK_OK(jobq_pause(q, "a"));
  CHECK_OK(jobq_pause(q, "a")); /* again: no-op */
  CHECK(paused_of(q, "a") == 1);
  CHECK(paused_of(q, "b") == 0);
  CHECK(every_queue_has_paused(q));

  /* Accepts puts, single and batched. */
  tu_put(q, "a", "a2", NULL);
  {
    jobq_payload items[2] = {{"a3", 2}, {"a4", 2}};
    uint64_t ids[2] = {0, 0};
    CHECK_OK(jobq_put_batch(q, "a", items, 2, NULL, ids));
    CHECK(ids[0] != 0 && ids[1] != 0);
  }
  TU_CHECK_COUNTS(q, "a", 4, 0, 0, 0);
  /* Delivers nothing: a reserve waits and times out, as on an empty queue. */
  tu_expect_nothing(q, "a", 0);
  tu_expect_nothing(q, "a", TU_SCALE(50));
  TU_CHECK_COUNTS(q, "a", 4, 0, 0, 0);
  /* Other queues are not affected. */
  job = tu_reserve(q, "b", 0);
  if (job != NULL) {
    CHECK(tu_payload_is(job, "b1"));
    tu_ack_free(job);
  }

  /* Resume: the jobs come in their order. */
  CHECK_OK(jobq_resume(q, "a"));
  CHECK(paused_of(q, "a") == 0);
  job = tu_reserve(q, "a", 0);
  if (job != NULL) {
    CHECK(jobq_job_id(job) == first);
    tu_ack_free(job);
  }
  CHECK_OK(jobq_resume(q, "a")); /* not paused: no-op */

  /* Pausing a queue never used records it; resuming one never used does not. */
  CHECK(paused_of(q, "fresh") == -1);
  CHECK_OK(jobq_pause(q, "fresh"));
  CHECK(paused_of(q, "fresh") == 1);
  TU_CHECK_COUNTS(q, "fresh", 0, 0, 0, 0);
  CHECK_OK(jobq_put(q, "fresh", "f", 1, NULL, &id));
  tu_expect_nothing(q, "fresh", 0);
  CHECK_OK(jobq_resume(q, "nobody"));
  CHECK(paused_of(q, "nobody") == -1);
  CHECK(every_queue_has_paused(q));
  CHECK_OK(jobq_close(q));
}

/* Jobs delivered before the pause run on: touch, fail, release, ack and bury
 * work; what they make ready again waits for the resume. */
static void test_running_jobs_finish(const char *dir) {
  jobq *q = tu_open(dir, "running.db", CFG);
  jobq_job *a, *b, *c, *d, *job;

  tu_put(q, "r", "1", NULL);
  tu_put(q, "r", "2", NULL);
  tu_put(q, "r", "3", NULL);
  tu_put(q, "r", "4", NULL);
  a = tu_reserve(q, "r", 0);
  b = tu_reserve(q, "r", 0);
  c = tu_reserve(q, "r", 0);
  d = tu_reserve(q, "r", 0);
  CHECK_OK(jobq_pause(q, "r"));
  TU_CHECK_COUNTS(q, "r", 0, 0, 4, 0);
  if (a != NULL) {
    CHECK_OK(jobq_touch(a, 0));
    CHECK_OK(jobq_ack(a));
    jobq_job_free(a);
  }
  if (b != NULL) {
    CHECK_OK(jobq_release(b, 0));
    jobq_job_free(b);
  }
  if (c != NULL) {
    CHECK_OK(jobq_fail(c, "while paused"));
    jobq_job_free(c);
  }
  if (d != NULL) {
    CHECK_OK(jobq_bury(d, "while paused"));
    jobq_job_free(d);
  }
  /* b is ready again, c ready or backing off: neither is delivered. */
  tu_expect_nothing(q, "r", TU_SCALE(30));
  CHECK(tu_stat(q, "r", "dead") == 1);
  CHECK_OK(jobq_resume(q, "r"));
  job = tu_reserve(q, "r", 0);
  if (job != NULL) {
    CHECK(tu_payload_is(job, "2"));
    tu_ack_free(job);
  }
  /* c's retry comes after its backoff (backoff_base_ms in CFG). */
  job = tu_reserve(q, "r", TU_MUST_MS);
  if (job != NULL) {
    CHECK(tu_payload_is(job, "3"));
    CHECK(jobq_job_attempt(job) == 2);
    tu_ack_free(job);
  }
  CHECK_OK(jobq_close(q));
}

/* A worker pool on a paused queue idles, and runs once resumed. */
static pthread_mutex_t handled_mu = PTHREAD_MUTEX_INITIALIZER;
static int handled_count;

static int handled(void) {
  int n;
  pthread_mutex_lock(&handled_mu);
  n = handled_count;
  pthread_mutex_unlock(&handled_mu);
  return n;
}

static jobq_outcome count_job(const jobq_job *job, void *user_data) {
  (void)job;
  (void)user_data;
  pthread_mutex_lock(&handled_mu);
  handled_count++;
  pthread_mutex_unlock(&handled_mu);
  return JOBQ_DONE;
}

static void test_worker_idles(const char *dir) {
  jobq *q = tu_open(dir, "worker.db", CFG);
  jobq_worker *w = NULL;
  int64_t deadline;

  handled_count = 0;
  CHECK_OK(jobq_pause(q, "w"));
  tu_put(q, "w", "1", NULL);
  tu_put(q, "w", "2", NULL);
  CHECK_OK(jobq_worker_start(q, "w", NULL, count_job, NULL, &w));
  tu_sleep_ms(TU_SCALE(100));
  CHECK(handled() == 0);
  TU_CHECK_COUNTS(q, "w", 2, 0, 0, 0);
  CHECK_OK(jobq_resume(q, "w"));
  deadline = tu_now_ms() + TU_MUST_MS;
  while (handled() < 2 && tu_now_ms() < deadline) {
    tu_sleep_ms(2);
  }
  CHECK(handled() == 2);
  /* Paused again while the pool runs: a new job waits. */
  CHECK_OK(jobq_pause(q, "w"));
  tu_put(q, "w", "3", NULL);
  tu_sleep_ms(TU_SCALE(100));
  CHECK(handled() == 2);
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, -1));
  }
  TU_CHECK_COUNTS(q, "w", 1, 0, 0, 0);
  CHECK_OK(jobq_close(q));
}

/* A reserve blocked on a paused queue (with a ready job) wakes at the resume. */
struct blocked {
  jobq *q;
  pthread_mutex_t mu;
  int done;
  jobq_status status;
  int64_t returned_at;
};

static int blocked_done(struct blocked *b) {
  int done;
  pthread_mutex_lock(&b->mu);
  done = b->done;
  pthread_mutex_unlock(&b->mu);
  return done;
}

static void *reserve_blocked(void *arg) {
  struct blocked *b = arg;
  jobq_job *job = NULL;
  jobq_status st = jobq_reserve(b->q, "wake", 3 * TU_MUST_MS, &job);
  int64_t at = tu_now_ms();
  if (job != NULL) {
    if (!tu_payload_is(job, "ready")) {
      st = JOBQ_E_INTERNAL;
    }
    (void)jobq_ack(job);
    jobq_job_free(job);
  }
  pthread_mutex_lock(&b->mu);
  b->status = st;
  b->returned_at = at;
  b->done = 1;
  pthread_mutex_unlock(&b->mu);
  return NULL;
}

static void test_resume_wakes_blocked_reserve(const char *dir) {
  struct blocked b;
  pthread_t t;
  int64_t resumed_at;

  b.q = tu_open(dir, "wake.db", CFG);
  pthread_mutex_init(&b.mu, NULL);
  b.done = 0;
  b.status = JOBQ_E_INTERNAL;
  b.returned_at = 0;
  CHECK_OK(jobq_pause(b.q, "wake"));
  tu_put(b.q, "wake", "ready", NULL);
  CHECK(pthread_create(&t, NULL, reserve_blocked, &b) == 0);
  tu_sleep_ms(TU_SCALE(100));
  CHECK(blocked_done(&b) == 0);
  resumed_at = tu_now_ms();
  CHECK_OK(jobq_resume(b.q, "wake"));
  pthread_join(t, NULL);
  CHECK_STATUS(b.status, JOBQ_OK);
  /* Woken, not found by a poll or a timeout. */
  CHECK(b.returned_at - resumed_at < TU_SCALE(500));
  printf("resume -> blocked reserve returned in %lld ms\n", (long long)(b.returned_at - resumed_at));
  CHECK_OK(jobq_close(b.q));
  pthread_mutex_destroy(&b.mu);
}

/* The pause is stored: it holds after close and reopen, until resumed. */
static void test_pause_persists(const char *dir) {
  jobq *q = tu_open(dir, "persist.db", CFG);
  jobq_job *job;

  tu_put(q, "p", "kept", NULL);
  CHECK_OK(jobq_pause(q, "p"));
  CHECK_OK(jobq_close(q));

  q = tu_open(dir, "persist.db", CFG);
  CHECK(paused_of(q, "p") == 1);
  tu_expect_nothing(q, "p", TU_SCALE(20));
  CHECK_OK(jobq_resume(q, "p"));
  CHECK_OK(jobq_close(q));

  q = tu_open(dir, "persist.db", CFG);
  CHECK(paused_of(q, "p") == 0);
  job = tu_reserve(q, "p", 0);
  if (job != NULL) {
    CHECK(tu_payload_is(job, "kept"));
    tu_ack_free(job);
  }
  CHECK_OK(jobq_close(q));
}

/* ---- other processes -------------------------------------------------- */

/* The parent pauses "x" (with a ready job); a child process sees it paused,
 * pauses "y" for the parent to see, then blocks in a reserve on "x" that the
 * parent's resume wakes. */
static void test_other_process(const char *dir) {
  char path[4096];
  jobq *q = tu_open(dir, "procs.db", CFG);
  int to_parent[2];
  pid_t pid;
  unsigned char c = 0, verdict = 0;
  int64_t resumed_at;
  jobq_job *job;

  snprintf(path, sizeof path, "%s", check_path(dir, "procs.db"));
  tu_put(q, "x", "for the child", NULL);
  tu_put(q, "y", "held by the child's pause", NULL);
  CHECK_OK(jobq_pause(q, "x"));
  CHECK(pipe(to_parent) == 0);
  /* The child must not print the parent's buffered output again. */
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    jobq *own = NULL;
    jobq_job *mine = NULL;
    unsigned char ready = 'r';
    tu_child_begin();
    close(to_parent[0]);
    CHECK_OK(jobq_open(path, CFG, &own));
    if (own != NULL) {
      CHECK(paused_of(own, "x") == 1);
      tu_expect_nothing(own, "x", 0);
      CHECK_OK(jobq_pause(own, "y"));
      if (write(to_parent[1], &ready, 1) != 1) {
        _exit(3);
      }
      /* Woken by the parent's resume (much sooner than this timeout). */
      CHECK_OK(jobq_reserve(own, "x", 3 * TU_MUST_MS, &mine));
      if (mine != NULL) {
        CHECK(tu_payload_is(mine, "for the child"));
        CHECK_OK(jobq_ack(mine));
        jobq_job_free(mine);
      }
      CHECK_OK(jobq_close(own));
    }
    tu_child_report(to_parent[1]);
    _exit(0);
  }
  close(to_parent[1]);
  CHECK(read(to_parent[0], &c, 1) == 1);
  CHECK(c == 'r');
  /* The child's pause of "y" holds here. */
  CHECK(paused_of(q, "y") == 1);
  tu_expect_nothing(q, "y", TU_SCALE(20));
  /* Let the child block in its reserve, then resume "x". */
  tu_sleep_ms(TU_SCALE(100));
  resumed_at = tu_now_ms();
  CHECK_OK(jobq_resume(q, "x"));
  CHECK(read(to_parent[0], &verdict, 1) == 1);
  CHECK(verdict == TU_CHILD_PASSED);
  CHECK(tu_now_ms() - resumed_at < TU_MUST_MS);
  printf("resume -> other process's reserve done in %lld ms\n", (long long)(tu_now_ms() - resumed_at));
  close(to_parent[0]);
  if (pid > 0) {
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
  }
  TU_CHECK_COUNTS(q, "x", 0, 0, 0, 0);
  CHECK_OK(jobq_resume(q, "y"));
  job = tu_reserve(q, "y", 0);
  if (job != NULL) {
    tu_ack_free(job);
  }
  CHECK_OK(jobq_close(q));
}

/* NULL handle or queue, invalid names: JOBQ_E_INVALID_ARG with a message,
 * nothing recorded; a closed handle: JOBQ_E_HANDLE. */
static void test_bad_args(const char *dir) {
  jobq *q = tu_open(dir, "bad.db", CFG);
  char long_name[1100];
  const char bad_utf8[] = {'q', (char)0xff, 0};

  memset(long_name, 'n', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';

  CHECK_STATUS(jobq_pause(NULL, "a"), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "NULL") != NULL);
  CHECK_STATUS(jobq_resume(NULL, "a"), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "NULL") != NULL);
  CHECK_STATUS(jobq_pause(q, NULL), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "queue") != NULL);
  CHECK_STATUS(jobq_resume(q, NULL), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "queue") != NULL);
  CHECK_STATUS(jobq_pause(q, ""), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "empty") != NULL);
  CHECK_STATUS(jobq_resume(q, ""), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_pause(q, long_name), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "longer") != NULL);
  CHECK_STATUS(jobq_resume(q, long_name), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_pause(q, bad_utf8), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "UTF-8") != NULL);
  CHECK_STATUS(jobq_resume(q, bad_utf8), JOBQ_E_INVALID_ARG);
  /* Nothing was recorded. */
  {
    char *json = NULL;
    CHECK_OK(jobq_stats_json(q, &json));
    CHECK(json != NULL && strcmp(json, "{\"queues\":{}}") == 0);
    jobq_string_free(json);
  }
  /* A success clears the last error. */
  CHECK_OK(jobq_pause(q, "ok"));
  CHECK(jobq_last_error()[0] == '\0');
  CHECK_OK(jobq_close(q));
  CHECK_STATUS(jobq_pause(q, "ok"), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_resume(q, "ok"), JOBQ_E_HANDLE);
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  tu_watchdog();
  CFG = tu_cfg("{\"durability\":\"normal\",\"backoff_base_ms\":%lld,\"backoff_max_ms\":%lld}",
               (long long)TU_SCALE(50), (long long)TU_SCALE(50));
  test_pause_holds_deliveries(dir);
  test_running_jobs_finish(dir);
  test_worker_idles(dir);
  test_resume_wakes_blocked_reserve(dir);
  test_pause_persists(dir);
  test_other_process(dir);
  test_bad_args(dir);
  return check_finish("test_pause");
}
