/* Failure handling: jobq_fail schedules a retry after an exponential,
 * capped backoff; after max_attempts the job is dead; jobq_bury kills at
 * once; jobq_kick brings dead jobs back with their attempts reset. */
#include "testutil.h"

/* A backoff far longer than any check, so "scheduled, not yet ready" holds
 * however slowly the test runs (valgrind); the exact delays are checked by
 * test_backoff_curve, with lower bounds only. */
static const char *SLOW_CFG =
    "{\"durability\":\"normal\",\"backoff_base_ms\":60000,"
    "\"backoff_max_ms\":60000,\"backoff_jitter\":0}";

static const char *CURVE_CFG =
    "{\"durability\":\"normal\",\"backoff_base_ms\":50,"
    "\"backoff_max_ms\":200,\"backoff_jitter\":0,\"max_attempts\":5}";

static const char *FAST_CFG =
    "{\"durability\":\"normal\",\"backoff_base_ms\":20,"
    "\"backoff_max_ms\":20,\"backoff_jitter\":0,\"max_attempts\":3}";

static void test_fail_schedules(const char *dir) {
  jobq *q = tu_open(dir, "slow.db", SLOW_CFG);
  jobq_job *job;
  uint64_t id = tu_put(q, "r", "x", NULL);
  uint64_t other;

  job = tu_reserve(q, "r", 0);
  if (job == NULL) {
    jobq_close(q);
    return;
  }
  CHECK_OK(jobq_fail(job, "temporary"));
  jobq_job_free(job);
  TU_CHECK_COUNTS(q, "r", 0, 1, 0, 0);
  tu_expect_nothing(q, "r", 0);
  tu_expect_nothing(q, "r", 200);

  /* A job in backoff does not hold back the rest of its queue. */
  other = tu_put(q, "r", "y", NULL);
  job = tu_reserve(q, "r", 0);
  if (job != NULL) {
    CHECK(jobq_job_id(job) == other);
    tu_ack_free(job);
  }
  TU_CHECK_COUNTS(q, "r", 0, 1, 0, 0);
  CHECK_OK(jobq_cancel(q, id));
  CHECK_OK(jobq_close(q));
}

/* Delay after attempt n is base * 2^(n-1), capped: 50, 100, 200, 200. */
static void test_backoff_curve(const char *dir) {
  static const int64_t delay[] = {50, 100, 200, 200};
  jobq *q = tu_open(dir, "curve.db", CURVE_CFG);
  jobq_job *job;
  int64_t t0 = 0;
  uint32_t attempt;
  tu_put(q, "c", "x", NULL);
  for (attempt = 1; attempt <= 5; attempt++) {
    job = tu_reserve(q, "c", attempt == 1 ? 0 : TU_MUST_MS);
    if (job == NULL) {
      break;
    }
    CHECK(jobq_job_attempt(job) == attempt);
    if (attempt > 1) {
      int64_t waited = tu_now_ms() - t0;
      CHECK(waited >= delay[attempt - 2] - 5);
      if (waited < delay[attempt - 2] - 5) {
        fprintf(stderr, "  attempt %u came after %lld ms, want >= %lld\n",
                (unsigned)attempt, (long long)waited,
                (long long)delay[attempt - 2]);
      }
    }
    t0 = tu_now_ms();
    CHECK_OK(jobq_fail(job, "again"));
    jobq_job_free(job);
  }
  /* The fifth failure used up max_attempts = 5. */
  CHECK(tu_wait_stat(q, "c", "dead", 1, TU_MUST_MS) == 1);
  TU_CHECK_COUNTS(q, "c", 0, 0, 0, 1);
  tu_expect_nothing(q, "c", 150);
  CHECK_OK(jobq_close(q));
}

static void fail_until_dead(jobq *q, const char *queue, int attempts) {
  int i;
  for (i = 1; i <= attempts; i++) {
    jobq_job *job = tu_reserve(q, queue, TU_MUST_MS);
    if (job == NULL) {
      return;
    }
    CHECK(jobq_job_attempt(job) == (uint32_t)i);
    CHECK_OK(jobq_fail(job, "no"));
    jobq_job_free(job);
  }
}

static void test_max_attempts(const char *dir) {
  jobq *q = tu_open(dir, "fast.db", FAST_CFG);
  jobq_put_opts opts;
  jobq_job *job;

  /* The file's max_attempts (3). */
  tu_put(q, "m", "x", NULL);
  fail_until_dead(q, "m", 3);
  CHECK(tu_wait_stat(q, "m", "dead", 1, TU_MUST_MS) == 1);
  TU_CHECK_COUNTS(q, "m", 0, 0, 0, 1);
  tu_expect_nothing(q, "m", 200);

  /* A job's own max_attempts overrides the file's, both ways. */
  jobq_put_opts_init(&opts);
  opts.max_attempts = 1;
  tu_put(q, "one", "x", &opts);
  job = tu_reserve(q, "one", 0);
  if (job != NULL) {
    CHECK_OK(jobq_fail(job, NULL));
    jobq_job_free(job);
  }
  TU_CHECK_COUNTS(q, "one", 0, 0, 0, 1);

  opts.max_attempts = 5;
  tu_put(q, "five", "x", &opts);
  fail_until_dead(q, "five", 4);
  job = tu_reserve(q, "five", TU_MUST_MS);
  if (job != NULL) {
    CHECK(jobq_job_attempt(job) == 5);
    tu_ack_free(job);
  }
  TU_CHECK_COUNTS(q, "five", 0, 0, 0, 0);

  /* kick brings it back with attempts reset. */
  {
    uint64_t kicked = 0;
    CHECK_OK(jobq_kick(q, "m", 10, &kicked));
    CHECK(kicked == 1);
    TU_CHECK_COUNTS(q, "m", 1, 0, 0, 0);
    job = tu_reserve(q, "m", 0);
    if (job != NULL) {
      CHECK(jobq_job_attempt(job) == 1);
      CHECK(tu_payload_is(job, "x"));
      /* ...and the full allowance again: a failure is a retry, not death. */
      CHECK_OK(jobq_fail(job, NULL));
      jobq_job_free(job);
      CHECK(tu_stat(q, "m", "dead") == 0);
      job = tu_reserve(q, "m", TU_MUST_MS);
      if (job != NULL) {
        CHECK(jobq_job_attempt(job) == 2);
        tu_ack_free(job);
      }
    }
  }
  CHECK_OK(jobq_close(q));
}

static void test_bury(const char *dir) {
  jobq *q = tu_open(dir, "fast.db", FAST_CFG);
  jobq_job *job;
  uint64_t kicked = 99;
  uint64_t id = tu_put(q, "b", "poison", NULL);

  job = tu_reserve(q, "b", 0);
  if (job != NULL) {
    /* Dead at once, although attempts are left. */
    CHECK_OK(jobq_bury(job, "cannot parse"));
    jobq_job_free(job);
  }
  TU_CHECK_COUNTS(q, "b", 0, 0, 0, 1);
  tu_expect_nothing(q, "b", 100);

  CHECK_OK(jobq_kick(q, "b", 1, &kicked));
  CHECK(kicked == 1);
  job = tu_reserve(q, "b", 0);
  if (job != NULL) {
    CHECK(jobq_job_id(job) == id);
    CHECK(jobq_job_attempt(job) == 1);
    CHECK(tu_payload_is(job, "poison"));
    CHECK_OK(jobq_bury(job, NULL));
    jobq_job_free(job);
  }
  TU_CHECK_COUNTS(q, "b", 0, 0, 0, 1);
  CHECK_OK(jobq_close(q));
}

static void test_kick_limits(const char *dir) {
  jobq *q = tu_open(dir, "kick.db", FAST_CFG);
  uint64_t ids[3];
  uint64_t kicked = 99;
  jobq_job *job;
  int i;

  /* Nothing dead: nothing to kick, also in a queue that never existed. */
  CHECK_OK(jobq_kick(q, "k", 10, &kicked));
  CHECK(kicked == 0);
  kicked = 99;
  CHECK_OK(jobq_kick(q, "never-used", 10, &kicked));
  CHECK(kicked == 0);

  for (i = 0; i < 3; i++) {
    ids[i] = tu_put(q, "k", "x", NULL);
  }
  tu_put(q, "other", "x", NULL);
  /* Bury in id order so "oldest" means the same by id and by death. */
  for (i = 0; i < 3; i++) {
    job = tu_reserve(q, "k", 0);
    if (job != NULL) {
      CHECK(jobq_job_id(job) == ids[i]);
      CHECK_OK(jobq_bury(job, NULL));
      jobq_job_free(job);
    }
  }
  job = tu_reserve(q, "other", 0);
  if (job != NULL) {
    CHECK_OK(jobq_bury(job, NULL));
    jobq_job_free(job);
  }
  TU_CHECK_COUNTS(q, "k", 0, 0, 0, 3);

  CHECK_OK(jobq_kick(q, "k", 2, &kicked));
  CHECK(kicked == 2);
  TU_CHECK_COUNTS(q, "k", 2, 0, 0, 1);
  /* Other queues' dead jobs are left alone. */
  TU_CHECK_COUNTS(q, "other", 0, 0, 0, 1);
  for (i = 0; i < 2; i++) {
    job = tu_reserve(q, "k", 0);
    if (job != NULL) {
      CHECK(jobq_job_id(job) == ids[i]);
      tu_ack_free(job);
    }
  }
  tu_expect_nothing(q, "k", 0);

  CHECK_OK(jobq_kick(q, "k", 100, &kicked));
  CHECK(kicked == 1);
  job = tu_reserve(q, "k", 0);
  if (job != NULL) {
    CHECK(jobq_job_id(job) == ids[2]);
    tu_ack_free(job);
  }
  CHECK_OK(jobq_close(q));
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  tu_watchdog();
  test_fail_schedules(dir);
  test_backoff_curve(dir);
  test_max_attempts(dir);
  test_bury(dir);
  test_kick_limits(dir);
  return check_finish("test_retries");
}
