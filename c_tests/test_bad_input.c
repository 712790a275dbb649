/* Bad arguments: every pointer checked, UTF-8 validated, config JSON
 * strict. Each rejected call gives JOBQ_E_INVALID_ARG (or JOBQ_E_TOO_BIG),
 * explains itself in jobq_last_error(), leaves its out-parameters alone
 * and stores nothing. */
#include "testutil.h"

#define BAD_UTF8 "\xff\xfe"

static int sentinel_storage;
#define Q_SENTINEL ((jobq *)&sentinel_storage)
#define JOB_SENTINEL ((jobq_job *)&sentinel_storage)
#define W_SENTINEL ((jobq_worker *)&sentinel_storage)
#define ID_SENTINEL ((uint64_t)0xdeadbeefcafeULL)

static jobq_outcome done_handler(const jobq_job *job, void *user_data) {
  (void)job;
  (void)user_data;
  return JOBQ_DONE;
}

/* A failing call must say why; a succeeding one clears the message. */
static void check_error_message(void) {
  const char *msg = jobq_last_error();
  CHECK(msg != NULL && msg[0] != '\0');
}

static void test_open_args(const char *dir) {
  jobq *q = Q_SENTINEL;
  CHECK_STATUS(jobq_open(NULL, NULL, &q), JOBQ_E_INVALID_ARG);
  CHECK(q == Q_SENTINEL);
  check_error_message();
  CHECK_STATUS(jobq_open(check_path(dir, "nullout.db"), NULL, NULL),
               JOBQ_E_INVALID_ARG);
  check_error_message();

  /* The message is cleared by the next successful fallible call. */
  q = tu_open(dir, "ok.db", NULL);
  CHECK(strcmp(jobq_last_error(), "") == 0);
  CHECK_OK(jobq_close(q));
}

static void test_config(const char *dir) {
  static const char *bad[] = {
      "{",
      "nonsense",
      "",
      "[1,2]",
      "42",
      "\"lease_ms\"",
      "{\"lease_ms\":100,}",
      "{\"lease_ms\":\"100\"}",
      "{\"lease_ms\":0}",
      "{\"lease_ms\":-5}",
      "{\"lease_ms\":1.5}",
      "{\"durability\":\"sometimes\"}",
      "{\"durability\":1}",
      "{\"durability\":\"" BAD_UTF8 "\"}",
      "{\"max_attempts\":0}",
      "{\"max_attempts\":-1}",
      "{\"backoff_jitter\":2}",
      "{\"backoff_jitter\":-0.1}",
      "{\"backoff_jitter\":\"none\"}",
      "{\"backoff_base_ms\":-1}",
      "{\"busy_timeout_ms\":-1}",
      "{\"max_payload_bytes\":-1}",
      "{\"max_payload_bytes\":\"big\"}",
  };
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    jobq *q = Q_SENTINEL;
    jobq_status st = jobq_open(check_path(dir, "cfg.db"), bad[i], &q);
    CHECK_STATUS(st, JOBQ_E_INVALID_ARG);
    CHECK(q == Q_SENTINEL);
    if (st != JOBQ_E_INVALID_ARG) {
      fprintf(stderr, "  config was: %s\n", bad[i]);
    }
    if (st == JOBQ_OK && q != Q_SENTINEL) {
      jobq_close(q);
    } else {
      check_error_message();
    }
  }

  /* Unknown keys are an error that names the key (typos must not be
   * silently ignored). */
  {
    jobq *q = Q_SENTINEL;
    CHECK_STATUS(jobq_open(check_path(dir, "cfg.db"),
                           "{\"lease_ms\":100,\"lease_msec\":5}", &q),
                 JOBQ_E_INVALID_ARG);
    CHECK(q == Q_SENTINEL);
    CHECK(strstr(jobq_last_error(), "lease_msec") != NULL);
    if (q != Q_SENTINEL) {
      jobq_close(q);
    }
  }
}

static void test_put_args(jobq *q) {
  uint64_t id = ID_SENTINEL;
  jobq_put_opts opts;

  CHECK_STATUS(jobq_put(q, NULL, "x", 1, NULL, &id), JOBQ_E_INVALID_ARG);
  check_error_message();
  CHECK_STATUS(jobq_put(q, "", "x", 1, NULL, &id), JOBQ_E_INVALID_ARG);
  check_error_message();
  CHECK_STATUS(jobq_put(q, BAD_UTF8, "x", 1, NULL, &id), JOBQ_E_INVALID_ARG);
  check_error_message();
  CHECK_STATUS(jobq_put(q, "p", NULL, 5, NULL, &id), JOBQ_E_INVALID_ARG);
  check_error_message();

  /* A struct never passed through the init function has struct_size 0. */
  memset(&opts, 0, sizeof opts);
  CHECK_STATUS(jobq_put(q, "p", "x", 1, &opts, &id), JOBQ_E_INVALID_ARG);
  check_error_message();
  jobq_put_opts_init(&opts);
  opts.struct_size = 4;
  CHECK_STATUS(jobq_put(q, "p", "x", 1, &opts, &id), JOBQ_E_INVALID_ARG);

  jobq_put_opts_init(&opts);
  opts.unique_key = BAD_UTF8;
  CHECK_STATUS(jobq_put(q, "p", "x", 1, &opts, &id), JOBQ_E_INVALID_ARG);
  check_error_message();

  CHECK(id == ID_SENTINEL);
  TU_CHECK_COUNTS(q, "p", 0, 0, 0, 0);
  tu_expect_nothing(q, "p", 0);
}

static void test_batch_args(jobq *q) {
  uint64_t ids[2] = {ID_SENTINEL, ID_SENTINEL};
  jobq_payload items[2];
  items[0].data = "a";
  items[0].len = 1;
  items[1].data = NULL;
  items[1].len = 3;

  CHECK_STATUS(jobq_put_batch(q, NULL, items, 1, NULL, ids),
               JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_put_batch(q, "", items, 1, NULL, ids),
               JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_put_batch(q, BAD_UTF8, items, 1, NULL, ids),
               JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_put_batch(q, "b", NULL, 2, NULL, ids), JOBQ_E_INVALID_ARG);
  /* One bad item rejects the whole batch: the good first item is not kept. */
  CHECK_STATUS(jobq_put_batch(q, "b", items, 2, NULL, ids),
               JOBQ_E_INVALID_ARG);
  check_error_message();
  CHECK(ids[0] == ID_SENTINEL && ids[1] == ID_SENTINEL);
  TU_CHECK_COUNTS(q, "b", 0, 0, 0, 0);

  /* NULL with length 0 is an empty slice: nothing to store, not an error. */
  CHECK_OK(jobq_put_batch(q, "b", NULL, 0, NULL, NULL));
  TU_CHECK_COUNTS(q, "b", 0, 0, 0, 0);
}

static void test_reserve_and_job_args(jobq *q) {
  jobq_job *job = JOB_SENTINEL;
  jobq_job *real;

  CHECK_STATUS(jobq_reserve(q, NULL, 0, &job), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_reserve(q, "", 0, &job), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_reserve(q, BAD_UTF8, 0, &job), JOBQ_E_INVALID_ARG);
  check_error_message();
  CHECK(job == JOB_SENTINEL);

  tu_put(q, "r", "x", NULL);
  CHECK_STATUS(jobq_reserve(q, "r", 0, NULL), JOBQ_E_INVALID_ARG);
  check_error_message();
  /* The rejected reserve did not take the job. */
  TU_CHECK_COUNTS(q, "r", 1, 0, 0, 0);

  real = tu_reserve(q, "r", 0);
  if (real == NULL) {
    return;
  }
  /* A rejected finish changes nothing: the job can still be acked. */
  CHECK_STATUS(jobq_fail(real, BAD_UTF8), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_bury(real, BAD_UTF8), JOBQ_E_INVALID_ARG);
  TU_CHECK_COUNTS(q, "r", 0, 0, 1, 0);
  tu_ack_free(real);
}

static void test_admin_args(jobq *q) {
  uint64_t kicked = ID_SENTINEL;
  char *json = (char *)&sentinel_storage;
  jobq_worker *w = W_SENTINEL;
  jobq_worker_opts wopts;

  CHECK_STATUS(jobq_kick(q, NULL, 10, &kicked), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_kick(q, "", 10, &kicked), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_kick(q, BAD_UTF8, 10, &kicked), JOBQ_E_INVALID_ARG);
  CHECK(kicked == ID_SENTINEL);

  CHECK_STATUS(jobq_stats_json(q, NULL), JOBQ_E_INVALID_ARG);
  check_error_message();
  CHECK(json == (char *)&sentinel_storage);

  CHECK_STATUS(jobq_worker_start(q, "w", NULL, NULL, NULL, &w),
               JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_worker_start(q, NULL, NULL, done_handler, NULL, &w),
               JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_worker_start(q, "", NULL, done_handler, NULL, &w),
               JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_worker_start(q, BAD_UTF8, NULL, done_handler, NULL, &w),
               JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_worker_start(q, "w", NULL, done_handler, NULL, NULL),
               JOBQ_E_INVALID_ARG);
  /* Same rule as jobq_put_opts: an uninitialised options struct is refused. */
  memset(&wopts, 0, sizeof wopts);
  wopts.concurrency = 1;
  CHECK_STATUS(jobq_worker_start(q, "w", &wopts, done_handler, NULL, &w),
               JOBQ_E_INVALID_ARG);
  check_error_message();
  CHECK(w == W_SENTINEL);
}

static void test_too_big(const char *dir) {
  char payload[40];
  uint64_t id = ID_SENTINEL;
  jobq *q = tu_open(dir, "big.db", "{\"max_payload_bytes\":16}");
  memset(payload, 'z', sizeof payload);

  CHECK_OK(jobq_put(q, "t", payload, 16, NULL, &id));
  CHECK(id != ID_SENTINEL);
  id = ID_SENTINEL;
  CHECK_STATUS(jobq_put(q, "t", payload, 17, NULL, &id), JOBQ_E_TOO_BIG);
  check_error_message();
  CHECK(id == ID_SENTINEL);
  CHECK_STATUS(jobq_put(q, "t", payload, sizeof payload, NULL, &id),
               JOBQ_E_TOO_BIG);
  CHECK(id == ID_SENTINEL);
  TU_CHECK_COUNTS(q, "t", 1, 0, 0, 0);

  /* A batch with one oversized item stores none of its items. */
  {
    jobq_payload items[3];
    uint64_t ids[3] = {ID_SENTINEL, ID_SENTINEL, ID_SENTINEL};
    items[0].data = payload;
    items[0].len = 1;
    items[1].data = payload;
    items[1].len = 17;
    items[2].data = payload;
    items[2].len = 2;
    CHECK_STATUS(jobq_put_batch(q, "t", items, 3, NULL, ids), JOBQ_E_TOO_BIG);
    CHECK(ids[0] == ID_SENTINEL && ids[1] == ID_SENTINEL &&
          ids[2] == ID_SENTINEL);
    TU_CHECK_COUNTS(q, "t", 1, 0, 0, 0);
  }
  CHECK_OK(jobq_close(q));
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  jobq *q;
  tu_watchdog();
  test_open_args(dir);
  test_config(dir);
  q = tu_open(dir, "q.db", NULL);
  test_put_args(q);
  test_batch_args(q);
  test_reserve_and_job_args(q);
  test_admin_args(q);
  CHECK_OK(jobq_close(q));
  test_too_big(dir);
  return check_finish("test_bad_input");
}
