/* The everyday path of the contract: open, put, reserve, the job accessors,
 * ack, ordering (priority, FIFO, delay), timeouts, persistence, and the
 * static texts (jobq_status_str, jobq_version, jobq_last_error). */
#include <sys/stat.h>

#include "testutil.h"

static void test_status_str(void) {
  static const struct {
    int code;
    const char *name;
  } codes[] = {
      {JOBQ_OK, "JOBQ_OK"},
      {JOBQ_TIMEOUT, "JOBQ_TIMEOUT"},
      {JOBQ_DUPLICATE, "JOBQ_DUPLICATE"},
      {JOBQ_E_INVALID_ARG, "JOBQ_E_INVALID_ARG"},
      {JOBQ_E_HANDLE, "JOBQ_E_HANDLE"},
      {JOBQ_E_NOT_FOUND, "JOBQ_E_NOT_FOUND"},
      {JOBQ_E_STATE, "JOBQ_E_STATE"},
      {JOBQ_E_BUSY, "JOBQ_E_BUSY"},
      {JOBQ_E_IO, "JOBQ_E_IO"},
      {JOBQ_E_CORRUPT, "JOBQ_E_CORRUPT"},
      {JOBQ_E_VERSION, "JOBQ_E_VERSION"},
      {JOBQ_E_TOO_BIG, "JOBQ_E_TOO_BIG"},
      {JOBQ_E_SHUTDOWN, "JOBQ_E_SHUTDOWN"},
      {JOBQ_E_INTERNAL, "JOBQ_E_INTERNAL"},
  };
  size_t i;
  for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    const char *s = jobq_status_str(codes[i].code);
    CHECK(s != NULL);
    if (s != NULL && strcmp(s, codes[i].name) != 0) {
      CHECK(!"jobq_status_str gave the wrong name");
      fprintf(stderr, "  code %d: got \"%s\", want \"%s\"\n", codes[i].code, s,
              codes[i].name);
    }
  }
  /* Codes come from C as plain ints, so any value must be safe to pass. */
  {
    static const int unknown[] = {12345, -77, 3, -11, -98, -100, 2147483647,
                                  -2147483647 - 1};
    for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
      const char *s = jobq_status_str(unknown[i]);
      CHECK(s != NULL);
      if (s != NULL) {
        CHECK(strcmp(s, "JOBQ_OK") != 0);
      }
    }
  }
}

static void test_version(void) {
  const char *v = jobq_version();
  unsigned major, minor, patch;
  char extra;
  CHECK(v != NULL);
  if (v == NULL) {
    return;
  }
  CHECK(sscanf(v, "%u.%u.%u%c", &major, &minor, &patch, &extra) == 3);
  /* Static text: the same pointer or at least the same text each time. */
  CHECK(strcmp(v, jobq_version()) == 0);
}

static void test_open_creates_file(const char *dir) {
  struct stat st;
  if (check_is_pg()) {
    printf("test_open_creates_file: file-only (mode 0600), skipped on the PostgreSQL pass\n");
    return;
  }
  jobq *q = tu_open(dir, "created.db", NULL);
  CHECK(stat(check_path(dir, "created.db"), &st) == 0);
  /* Queue files hold other people's data: created private (0600). */
  CHECK((st.st_mode & 0777) == 0600);
  CHECK_OK(jobq_close(q));
}

static void test_round_trip(const char *dir) {
  static const unsigned char bytes[] = {'a', 0, 'b', 0xff, 0x80, '\n', 0};
  jobq *q = tu_open(dir, "q.db", NULL);
  uint64_t id = 0;
  jobq_job *job = NULL;
  size_t len = 12345;
  const uint8_t *data;

  CHECK(strcmp(jobq_last_error(), "") == 0);
  CHECK_OK(jobq_put(q, "emails", bytes, sizeof bytes, NULL, &id));
  CHECK(id != 0);
  CHECK(strcmp(jobq_last_error(), "") == 0);
  TU_CHECK_COUNTS(q, "emails", 1, 0, 0, 0);

  CHECK_OK(jobq_reserve(q, "emails", 0, &job));
  CHECK(job != NULL);
  if (job == NULL) {
    jobq_close(q);
    return;
  }
  CHECK(jobq_job_id(job) == id);
  CHECK(jobq_job_queue(job) != NULL &&
        strcmp(jobq_job_queue(job), "emails") == 0);
  CHECK(jobq_job_attempt(job) == 1);
  data = jobq_job_payload(job, &len);
  /* Payloads are bytes, not strings: embedded NULs and high bytes survive. */
  CHECK(len == sizeof bytes);
  CHECK(data != NULL && memcmp(data, bytes, sizeof bytes) == 0);
  /* The accessors can be called repeatedly and agree. */
  CHECK(jobq_job_payload(job, &len) == data);
  CHECK(jobq_job_id(job) == id);

  /* A delivered job is leased: nobody else gets it meanwhile. */
  TU_CHECK_COUNTS(q, "emails", 0, 0, 1, 0);
  tu_expect_nothing(q, "emails", 0);

  CHECK_OK(jobq_ack(job));
  CHECK(strcmp(jobq_last_error(), "") == 0);
  jobq_job_free(job);
  TU_CHECK_COUNTS(q, "emails", 0, 0, 0, 0);
  tu_expect_nothing(q, "emails", 0);
  CHECK_OK(jobq_close(q));
}

static void test_empty_payload_and_null_out_id(const char *dir) {
  jobq *q = tu_open(dir, "empty.db", NULL);
  jobq_job *job;
  size_t len = 999;
  uint64_t id = 0;

  CHECK_OK(jobq_put(q, "e", NULL, 0, NULL, &id));
  CHECK(id != 0);
  CHECK_OK(jobq_put(q, "e", "ignored", 0, NULL, NULL));
  job = tu_reserve(q, "e", 0);
  if (job != NULL) {
    CHECK(jobq_job_id(job) == id);
    /* jobq.h: a 0-byte payload still gives a non-NULL pointer, and the
     * length pointer is optional. */
    CHECK(jobq_job_payload(job, &len) != NULL);
    CHECK(len == 0);
    CHECK(jobq_job_payload(job, NULL) != NULL);
    tu_ack_free(job);
  }
  job = tu_reserve(q, "e", 0);
  if (job != NULL) {
    len = 999;
    jobq_job_payload(job, &len);
    CHECK(len == 0);
    CHECK(jobq_job_id(job) > id);
    tu_ack_free(job);
  }
  CHECK_OK(jobq_close(q));
}

static void test_ids_and_fifo(const char *dir) {
  jobq *q = tu_open(dir, "fifo.db", NULL);
  uint64_t ids[5];
  char text[16];
  int i;
  for (i = 0; i < 5; i++) {
    snprintf(text, sizeof text, "job-%d", i);
    ids[i] = tu_put(q, "f", text, NULL);
    if (i > 0) {
      CHECK(ids[i] > ids[i - 1]);
    }
  }
  /* Ids are unique in the whole file, not per queue. */
  {
    uint64_t other = tu_put(q, "other", "x", NULL);
    CHECK(other > ids[4]);
  }
  for (i = 0; i < 5; i++) {
    jobq_job *job = tu_reserve(q, "f", 0);
    if (job == NULL) {
      break;
    }
    snprintf(text, sizeof text, "job-%d", i);
    CHECK(jobq_job_id(job) == ids[i]);
    CHECK(tu_payload_is(job, text));
    tu_ack_free(job);
  }
  CHECK_OK(jobq_close(q));
}

/* "Ids are unique in the file and increase": an id is never handed out
 * again, even after its job is gone and the file was reopened (a stale id
 * held by an operator must not name some other job). */
static void test_ids_never_reused(const char *dir) {
  jobq *q = tu_open(dir, "reuse.db", NULL);
  uint64_t a, b, c;
  jobq_job *job;
  a = tu_put(q, "r", "a", NULL);
  job = tu_reserve(q, "r", 0);
  tu_ack_free(job);
  b = tu_put(q, "r", "b", NULL);
  CHECK(b > a);
  CHECK_OK(jobq_cancel(q, b));
  CHECK_OK(jobq_close(q));
  q = tu_open(dir, "reuse.db", NULL);
  c = tu_put(q, "r", "c", NULL);
  CHECK(c > b);
  CHECK_STATUS(jobq_cancel(q, a), JOBQ_E_NOT_FOUND);
  CHECK_STATUS(jobq_cancel(q, b), JOBQ_E_NOT_FOUND);
  CHECK_OK(jobq_cancel(q, c));
  CHECK_OK(jobq_close(q));
}

static void test_priority(const char *dir) {
  static const int32_t prio[] = {5, 0, -3, 0, 2147483647, -2147483647 - 1};
  /* Expected delivery order as indexes into prio: smallest first, FIFO ties. */
  static const int order[] = {5, 2, 1, 3, 0, 4};
  jobq *q = tu_open(dir, "prio.db", NULL);
  uint64_t ids[6];
  int i;
  for (i = 0; i < 6; i++) {
    jobq_put_opts opts;
    jobq_put_opts_init(&opts);
    opts.priority = prio[i];
    ids[i] = tu_put(q, "p", "x", &opts);
  }
  for (i = 0; i < 6; i++) {
    jobq_job *job = tu_reserve(q, "p", 0);
    if (job == NULL) {
      break;
    }
    CHECK(jobq_job_id(job) == ids[order[i]]);
    tu_ack_free(job);
  }
  CHECK_OK(jobq_close(q));
}

static void test_delay(const char *dir) {
  jobq *q = tu_open(dir, "delay.db", NULL);
  jobq_put_opts opts;
  jobq_job *job;
  uint64_t delayed, plain;
  int64_t t0;

  /* A delayed job is scheduled, and does not hold back later jobs. */
  jobq_put_opts_init(&opts);
  opts.delay_ms = 60000;
  delayed = tu_put(q, "d", "much later", &opts);
  TU_CHECK_COUNTS(q, "d", 0, 1, 0, 0);
  tu_expect_nothing(q, "d", 0);
  plain = tu_put(q, "d", "now", NULL);
  job = tu_reserve(q, "d", 0);
  if (job != NULL) {
    CHECK(jobq_job_id(job) == plain);
    tu_ack_free(job);
  }
  CHECK_OK(jobq_cancel(q, delayed));

  /* A waiting reserve gets it once the delay has passed, not before. */
  opts.delay_ms = 200;
  t0 = tu_now_ms();
  delayed = tu_put(q, "d", "later", &opts);
  job = tu_reserve(q, "d", TU_MUST_MS);
  if (job != NULL) {
    CHECK(jobq_job_id(job) == delayed);
    CHECK(tu_payload_is(job, "later"));
    CHECK(tu_now_ms() - t0 >= 190);
    tu_ack_free(job);
  }
  CHECK_OK(jobq_close(q));
}

static void test_timeouts(const char *dir) {
  jobq *q = tu_open(dir, "timeout.db", NULL);
  jobq_job *sentinel = (jobq_job *)&sentinel;
  jobq_job *job = sentinel;
  int64_t t0;

  CHECK_STATUS(jobq_reserve(q, "nothing", 0, &job), JOBQ_TIMEOUT);
  CHECK(job == sentinel);

  t0 = tu_now_ms();
  CHECK_STATUS(jobq_reserve(q, "nothing", 150, &job), JOBQ_TIMEOUT);
  /* A timeout is not an early return: the call really waited. */
  CHECK(tu_now_ms() - t0 >= 140);
  CHECK(job == sentinel);

  /* Queues in one file are independent. */
  tu_put(q, "a", "x", NULL);
  CHECK_STATUS(jobq_reserve(q, "b", 0, &job), JOBQ_TIMEOUT);
  CHECK(job == sentinel);
  job = tu_reserve(q, "a", 0);
  tu_ack_free(job);
  CHECK_OK(jobq_close(q));
}

static void test_persistence(const char *dir) {
  static const char *cfgs[] = {NULL, "{\"durability\":\"full\"}",
                               "{\"durability\":\"normal\"}"};
  int i;
  for (i = 0; i < 3; i++) {
    jobq *q = tu_open(dir, "persist.db", cfgs[i]);
    uint64_t id = tu_put(q, "keep", "survives close", NULL);
    jobq_job *job;
    CHECK_OK(jobq_close(q));

    q = tu_open(dir, "persist.db", cfgs[i]);
    job = tu_reserve(q, "keep", 0);
    if (job != NULL) {
      CHECK(jobq_job_id(job) == id);
      CHECK(tu_payload_is(job, "survives close"));
      tu_ack_free(job);
    }
    CHECK_OK(jobq_close(q));
  }
}

static void test_full_config(const char *dir) {
  jobq *q = tu_open(dir, "cfg.db",
                    "{\"durability\":\"full\",\"lease_ms\":30000,"
                    "\"max_attempts\":25,\"backoff_base_ms\":1000,"
                    "\"backoff_max_ms\":3600000,\"backoff_jitter\":0.1,"
                    "\"busy_timeout_ms\":5000,\"max_payload_bytes\":16777216}");
  CHECK(strcmp(jobq_last_error(), "") == 0);
  CHECK_OK(jobq_close(q));
  /* An empty object is the defaults. */
  q = tu_open(dir, "cfg.db", "{}");
  CHECK_OK(jobq_close(q));
  q = tu_open(dir, "cfg.db", " { } ");
  CHECK_OK(jobq_close(q));
}

static void test_two_handles_one_file(const char *dir) {
  jobq *a = tu_open(dir, "shared.db", NULL);
  jobq *b = tu_open(dir, "shared.db", NULL);
  uint64_t id = tu_put(a, "s", "from a", NULL);
  jobq_job *job = tu_reserve(b, "s", TU_MUST_MS);
  if (job != NULL) {
    CHECK(jobq_job_id(job) == id);
    tu_ack_free(job);
  }
  tu_expect_nothing(a, "s", 0);
  CHECK_OK(jobq_close(a));
  CHECK_OK(jobq_close(b));
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  tu_watchdog();
  /* Nothing has failed in this thread yet. */
  CHECK(jobq_last_error() != NULL && strcmp(jobq_last_error(), "") == 0);
  test_status_str();
  test_version();
  test_open_creates_file(dir);
  test_round_trip(dir);
  test_empty_payload_and_null_out_id(dir);
  test_ids_and_fifo(dir);
  test_ids_never_reused(dir);
  test_priority(dir);
  test_delay(dir);
  test_timeouts(dir);
  test_persistence(dir);
  test_full_config(dir);
  test_two_handles_one_file(dir);
  return check_finish("test_basics");
}
