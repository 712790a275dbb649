/* jobq_ack_result, keep_done_ms and jobq_job_info: an ack through a handle
 * with keep_done_ms > 0 keeps the job in state "done" with its result,
 * attempts, last error and times until keep_done_ms after the ack; it is
 * never delivered again and frees its unique key at once; with keep_done_ms 0
 * the job is gone at ack as before. jobq_job_info shows live and done jobs;
 * a pruned or unknown id is JOBQ_E_NOT_FOUND.
 * argv[1] = a fresh directory (on the PostgreSQL pass, stores are schemas). */
#include "testutil.h"

/* Long enough that nothing expires during a check (scaled under valgrind). */
#define KEEP_LONG_MS TU_SCALE(600000)

static const char *keep_cfg(int64_t keep_ms) {
  return tu_cfg("{\"keep_done_ms\":%lld,\"backoff_base_ms\":1,\"backoff_jitter\":0,"
                "\"durability\":\"normal\"}",
                (long long)keep_ms);
}

/* 1 when the JSON of job `id` contains `want` (e.g. "\"state\":\"done\""). */
static int info_has(jobq *q, uint64_t id, const char *want) {
  char *json = NULL;
  int found;
  if (jobq_job_info(q, id, &json) != JOBQ_OK || json == NULL) {
    return 0;
  }
  found = strstr(json, want) != NULL;
  if (!found) {
    fprintf(stderr, "  job %llu: %s lacks %s\n", (unsigned long long)id, json, want);
  }
  jobq_string_free(json);
  return found;
}

/* The integer value of "key" in the JSON of job `id`; -1 if absent/null. */
static long long info_int(jobq *q, uint64_t id, const char *key) {
  char *json = NULL;
  char quoted[64];
  size_t at;
  long long v = -1;
  CHECK_OK(jobq_job_info(q, id, &json));
  if (json == NULL) {
    return -1;
  }
  snprintf(quoted, sizeof quoted, "\"%s\":", key);
  at = strstr(json, quoted) != NULL ? (size_t)(strstr(json, quoted) - json) + strlen(quoted) : 0;
  if (at > 0 && json[at] != 'n') {
    v = strtoll(json + at, NULL, 10);
  }
  jobq_string_free(json);
  return v;
}

static void expect_not_found(jobq *q, uint64_t id) {
  char *json = (char *)"untouched";
  CHECK_STATUS(jobq_job_info(q, id, &json), JOBQ_E_NOT_FOUND);
  CHECK(strcmp(json, "untouched") == 0);
  CHECK(strlen(jobq_last_error()) > 0);
}

static void test_ack_result_then_info(const char *dir) {
  jobq *q = tu_open(dir, "info.db", keep_cfg(KEEP_LONG_MS));
  jobq_put_opts opts;
  jobq_job *job;
  uint64_t id;
  long long created, finished, expires;

  jobq_put_opts_init(&opts);
  opts.priority = 7;
  opts.max_attempts = 4;
  id = tu_put(q, "work", "input", &opts);
  /* A live job: ready, no result, no finish times. */
  CHECK(info_has(q, id, "\"state\":\"ready\""));
  CHECK(info_has(q, id, "\"queue\":\"work\""));
  CHECK(info_has(q, id, "\"result\":null"));
  CHECK(info_has(q, id, "\"result_b64\":null"));
  CHECK(info_has(q, id, "\"finished_at\":null"));
  CHECK(info_has(q, id, "\"expires_at\":null"));
  CHECK(info_has(q, id, "\"payload_len\":5"));

  job = tu_reserve(q, "work", 0);
  CHECK(info_has(q, id, "\"state\":\"reserved\""));
  CHECK(info_int(q, id, "lease_until") > 0);
  if (job != NULL) {
    CHECK_OK(jobq_ack_result(job, "{\"ok\":true}", 11));
    /* A second finish of the delivery is stale and changes nothing. */
    CHECK_STATUS(jobq_ack_result(job, "again", 5), JOBQ_E_STATE);
    CHECK_STATUS(jobq_ack(job), JOBQ_E_STATE);
    jobq_job_free(job);
  }
  CHECK(info_has(q, id, "\"state\":\"done\""));
  CHECK(info_has(q, id, "\"result\":\"{\\\"ok\\\":true}\""));
  CHECK(info_has(q, id, "\"result_b64\":\"eyJvayI6dHJ1ZX0=\""));
  CHECK(info_has(q, id, "\"result_len\":11"));
  CHECK(info_has(q, id, "\"attempts\":1"));
  CHECK(info_has(q, id, "\"max_attempts\":4"));
  CHECK(info_has(q, id, "\"priority\":7"));
  CHECK(info_has(q, id, "\"last_error\":null"));
  CHECK(info_has(q, id, "\"lease_until\":null"));
  created = info_int(q, id, "created_at");
  finished = info_int(q, id, "finished_at");
  expires = info_int(q, id, "expires_at");
  CHECK(created > 0 && finished >= created);
  CHECK(expires == finished + KEEP_LONG_MS);
  CHECK(info_int(q, id, "run_at") == expires);

  /* Counted as done, not ready/reserved/dead; never delivered again. */
  TU_CHECK_COUNTS(q, "work", 0, 0, 0, 0);
  CHECK(tu_stat(q, "work", "done") == 1);
  tu_expect_nothing(q, "work", 0);

  /* A plain ack keeps the job too, without a result; an empty result is
   * an empty string, a binary one only base64. */
  {
    uint64_t plain = tu_put(q, "work", "p", NULL);
    uint64_t empty = tu_put(q, "work", "e", NULL);
    uint64_t binary = tu_put(q, "work", "b", NULL);
    static const unsigned char bytes[3] = {0xff, 0x00, 0xfe};
    tu_ack_free(tu_reserve(q, "work", 0));
    job = tu_reserve(q, "work", 0);
    if (job != NULL) {
      CHECK_OK(jobq_ack_result(job, NULL, 0));
      jobq_job_free(job);
    }
    job = tu_reserve(q, "work", 0);
    if (job != NULL) {
      CHECK_OK(jobq_ack_result(job, bytes, sizeof bytes));
      jobq_job_free(job);
    }
    CHECK(info_has(q, plain, "\"state\":\"done\""));
    CHECK(info_has(q, plain, "\"result\":null"));
    CHECK(info_has(q, plain, "\"result_b64\":null"));
    CHECK(info_has(q, empty, "\"result\":\"\""));
    CHECK(info_has(q, empty, "\"result_b64\":\"\""));
    CHECK(info_has(q, empty, "\"result_len\":0"));
    CHECK(info_has(q, binary, "\"result\":null"));
    CHECK(info_has(q, binary, "\"result_b64\":\"/wD+\""));
    CHECK(tu_stat(q, "work", "done") == 4);
  }

  /* The largest result is stored whole. */
  {
    char *big = malloc(JOBQ_RESULT_MAX);
    CHECK(big != NULL);
    if (big != NULL) {
      uint64_t big_id;
      memset(big, 'x', JOBQ_RESULT_MAX);
      big_id = tu_put(q, "work", "big", NULL);
      job = tu_reserve(q, "work", 0);
      if (job != NULL) {
        CHECK_OK(jobq_ack_result(job, big, JOBQ_RESULT_MAX));
        jobq_job_free(job);
      }
      CHECK(info_int(q, big_id, "result_len") == JOBQ_RESULT_MAX);
      free(big);
    }
  }
  CHECK_OK(jobq_close(q));

  /* Kept across close and reopen (it is stored). */
  q = tu_open(dir, "info.db", keep_cfg(0));
  CHECK(info_has(q, id, "\"state\":\"done\""));
  CHECK(info_has(q, id, "\"result_len\":11"));
  CHECK_OK(jobq_close(q));
}

static void test_keep_zero_deletes(const char *dir) {
  jobq *q = tu_open(dir, "zero.db", keep_cfg(0));
  jobq_job *job;
  uint64_t a = tu_put(q, "z", "a", NULL);
  uint64_t b = tu_put(q, "z", "b", NULL);
  tu_ack_free(tu_reserve(q, "z", 0));
  expect_not_found(q, a);
  job = tu_reserve(q, "z", 0);
  if (job != NULL) {
    /* Accepted, and discarded with the job. */
    CHECK_OK(jobq_ack_result(job, "r", 1));
    jobq_job_free(job);
  }
  expect_not_found(q, b);
  CHECK(tu_stat(q, "z", "done") == 0);
  CHECK_OK(jobq_close(q));
}

static void test_failed_then_acked(const char *dir) {
  jobq *q = tu_open(dir, "retry.db", keep_cfg(KEEP_LONG_MS));
  jobq_job *job;
  uint64_t id = tu_put(q, "r", "flaky", NULL);
  job = tu_reserve(q, "r", 0);
  if (job != NULL) {
    CHECK_OK(jobq_fail(job, "boom: first try"));
    jobq_job_free(job);
  }
  CHECK(info_has(q, id, "\"last_error\":\"boom: first try\""));
  job = tu_reserve(q, "r", TU_MUST_MS); /* after the 1 ms backoff */
  if (job != NULL) {
    CHECK(jobq_job_attempt(job) == 2);
    CHECK_OK(jobq_ack_result(job, "fine", 4));
    jobq_job_free(job);
  }
  CHECK(info_has(q, id, "\"state\":\"done\""));
  CHECK(info_has(q, id, "\"attempts\":2"));
  CHECK(info_has(q, id, "\"last_error\":\"boom: first try\""));
  CHECK(info_has(q, id, "\"result\":\"fine\""));
  CHECK_OK(jobq_close(q));
}

static void test_pruned_after_keep(const char *dir) {
  int64_t keep = TU_SCALE(150);
  jobq *q = tu_open(dir, "prune.db", keep_cfg(keep));
  jobq_job *job;
  uint64_t id = tu_put(q, "p", "x", NULL);
  int64_t acked;
  job = tu_reserve(q, "p", 0);
  if (job != NULL) {
    CHECK_OK(jobq_ack_result(job, "kept a while", 12));
    jobq_job_free(job);
  }
  acked = tu_now_ms();
  /* Still there right after the ack (unless the machine stalled past keep). */
  if (tu_now_ms() - acked < keep / 2) {
    CHECK(info_has(q, id, "\"state\":\"done\""));
    CHECK(tu_stat(q, "p", "done") == 1);
  }
  tu_sleep_ms((long)(keep + 20));
  expect_not_found(q, id);
  CHECK(tu_stat(q, "p", "done") == 0);
  /* The queue works on. */
  tu_put(q, "p", "y", NULL);
  tu_ack_free(tu_reserve(q, "p", 0));
  CHECK_OK(jobq_close(q));
}

static void test_unique_key_freed_at_ack(const char *dir) {
  jobq *q = tu_open(dir, "unique.db", keep_cfg(KEEP_LONG_MS));
  jobq_put_opts opts;
  uint64_t first, again = 0;
  jobq_put_opts_init(&opts);
  opts.unique_key = "report-42";
  first = tu_put(q, "u", "one", &opts);
  CHECK_STATUS(jobq_put(q, "u", "dup", 3, &opts, &again), JOBQ_DUPLICATE);
  CHECK(again == first);
  tu_ack_free(tu_reserve(q, "u", 0));
  CHECK(info_has(q, first, "\"state\":\"done\""));
  CHECK(info_has(q, first, "\"unique_key\":\"report-42\""));
  /* The done job holds its key no more. */
  CHECK_OK(jobq_put(q, "u", "two", 3, &opts, &again));
  CHECK(again != first && again != 0);
  CHECK_OK(jobq_close(q));
}

static void test_batched_acks_keep(const char *dir) {
  jobq *q = tu_open(dir, "batched.db", keep_cfg(KEEP_LONG_MS));
  jobq_job *jobs[3] = {NULL, NULL, NULL};
  jobq_job *next = NULL;
  size_t n = 0, i;
  uint64_t ids[4];
  for (i = 0; i < 4; i++) {
    ids[i] = tu_put(q, "m", "x", NULL);
  }
  CHECK_OK(jobq_reserve_many(q, "m", 3, 0, jobs, &n));
  CHECK(n == 3);
  CHECK_OK(jobq_ack_reserve(jobs[0], "m", 0, &next));
  CHECK(next != NULL && jobq_job_id(next) == ids[3]);
  CHECK_OK(jobq_ack_many(jobs + 1, 2, NULL));
  tu_ack_free(next);
  for (i = 0; i < n; i++) {
    jobq_job_free(jobs[i]);
  }
  for (i = 0; i < 4; i++) {
    CHECK(info_has(q, ids[i], "\"state\":\"done\""));
  }
  CHECK(tu_stat(q, "m", "done") == 4);
  CHECK_OK(jobq_close(q));
}

/* keep_done_ms is the acking handle's: two handles of one store differ. */
static void test_handles_with_different_keeps(const char *dir) {
  jobq *keeper = tu_open(dir, "shared.db", keep_cfg(KEEP_LONG_MS));
  jobq *dropper = tu_open(dir, "shared.db", keep_cfg(0));
  uint64_t kept = tu_put(keeper, "s", "k", NULL);
  uint64_t dropped = tu_put(keeper, "s", "d", NULL);
  tu_ack_free(tu_reserve(keeper, "s", 0));
  tu_ack_free(tu_reserve(dropper, "s", 0));
  CHECK(info_has(dropper, kept, "\"state\":\"done\""));
  expect_not_found(keeper, dropped);
  CHECK_OK(jobq_close(dropper));
  CHECK_OK(jobq_close(keeper));
}

static void test_bad_input(const char *dir) {
  jobq *q = tu_open(dir, "bad.db", keep_cfg(KEEP_LONG_MS));
  jobq_job *job;
  char *json = NULL;
  uint64_t id = tu_put(q, "b", "x", NULL);

  CHECK_STATUS(jobq_ack_result(NULL, "r", 1), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_job_info(q, id, NULL), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_job_info(NULL, id, &json), JOBQ_E_INVALID_ARG);
  CHECK(json == NULL);
  expect_not_found(q, id + 1000);
  expect_not_found(q, 0);

  job = tu_reserve(q, "b", 0);
  if (job != NULL) {
    char *big = calloc(1, JOBQ_RESULT_MAX + 1);
    CHECK(big != NULL);
    if (big != NULL) {
      CHECK_STATUS(jobq_ack_result(job, big, JOBQ_RESULT_MAX + 1), JOBQ_E_TOO_BIG);
      CHECK(strstr(jobq_last_error(), "result") != NULL);
      free(big);
    }
    CHECK_STATUS(jobq_ack_result(job, NULL, 1), JOBQ_E_INVALID_ARG);
    /* Nothing stored: still reserved, and the delivery still ours. */
    CHECK(info_has(q, id, "\"state\":\"reserved\""));
    CHECK(info_has(q, id, "\"result\":null"));
    CHECK_OK(jobq_ack_result(job, "ok", 2));
    jobq_job_free(job);
    /* A freed handle. */
    CHECK_STATUS(jobq_ack_result(job, "ok", 2), JOBQ_E_HANDLE);
  }
  CHECK(info_has(q, id, "\"result\":\"ok\""));
  CHECK_OK(jobq_close(q));
}

static void test_stale_ack_result(const char *dir) {
  jobq *q = tu_open(dir, "stale.db", keep_cfg(KEEP_LONG_MS));
  jobq_put_opts opts;
  jobq_job *old, *fresh;
  uint64_t id;
  jobq_put_opts_init(&opts);
  opts.lease_ms = (uint64_t)TU_SCALE(40);
  id = tu_put(q, "st", "x", &opts);
  old = tu_reserve(q, "st", 0);
  /* The lease runs out and the job goes to someone else. */
  fresh = tu_reserve(q, "st", TU_MUST_MS);
  CHECK(fresh != NULL && jobq_job_id(fresh) == id);
  if (old != NULL) {
    CHECK_STATUS(jobq_ack_result(old, "stale", 5), JOBQ_E_STATE);
    jobq_job_free(old);
  }
  CHECK(info_has(q, id, "\"state\":\"reserved\""));
  CHECK(info_has(q, id, "\"result\":null"));
  CHECK(info_has(q, id, "\"attempts\":2"));
  if (fresh != NULL) {
    CHECK_OK(jobq_ack_result(fresh, "fresh", 5));
    jobq_job_free(fresh);
  }
  CHECK(info_has(q, id, "\"result\":\"fresh\""));
  CHECK_OK(jobq_close(q));
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  tu_watchdog();
  test_ack_result_then_info(dir);
  test_keep_zero_deletes(dir);
  test_failed_then_acked(dir);
  test_pruned_after_keep(dir);
  test_unique_key_freed_at_ack(dir);
  test_batched_acks_keep(dir);
  test_handles_with_different_keeps(dir);
  test_bad_input(dir);
  test_stale_ack_result(dir);
  return check_finish("test_results");
}
