/* Unique keys (JOBQ_DUPLICATE while a job with the key is live, free again
 * once it is acked, cancelled or dead) and jobq_put_batch (one transaction,
 * shared options, ids in order). */
#include "testutil.h"

/* Long backoff: a failed job stays "scheduled" however slow the run. */
static const char *CFG =
    "{\"durability\":\"normal\",\"backoff_base_ms\":60000,"
    "\"backoff_max_ms\":60000,\"backoff_jitter\":0}";
#define ID_SENTINEL ((uint64_t)0xdeadbeefcafeULL)

static jobq_put_opts keyed(const char *key) {
  jobq_put_opts opts;
  jobq_put_opts_init(&opts);
  opts.unique_key = key;
  return opts;
}

static void expect_duplicate(jobq *q, const char *queue, const char *key,
                             uint64_t holder) {
  jobq_put_opts opts = keyed(key);
  uint64_t id = ID_SENTINEL;
  CHECK_STATUS(jobq_put(q, queue, "dup", 3, &opts, &id), JOBQ_DUPLICATE);
  CHECK(id == holder);
  /* The out pointer is optional for duplicates as well. */
  CHECK_STATUS(jobq_put(q, queue, "dup", 3, &opts, NULL), JOBQ_DUPLICATE);
}

static uint64_t put_keyed(jobq *q, const char *queue, const char *key) {
  jobq_put_opts opts = keyed(key);
  return tu_put(q, queue, "keyed", &opts);
}

static void test_unique_live_states(jobq *q) {
  jobq_put_opts opts;
  jobq_job *job;
  uint64_t first = put_keyed(q, "u", "order-1");

  /* ready */
  expect_duplicate(q, "u", "order-1", first);
  TU_CHECK_COUNTS(q, "u", 1, 0, 0, 0);

  /* Keys are per queue, and different keys don't collide. */
  {
    uint64_t elsewhere = put_keyed(q, "u2", "order-1");
    uint64_t other_key = put_keyed(q, "u", "order-2");
    CHECK(elsewhere != first && other_key != first);
    CHECK(jobq_cancel(q, elsewhere) == JOBQ_OK);
    CHECK(jobq_cancel(q, other_key) == JOBQ_OK);
  }

  /* reserved */
  job = tu_reserve(q, "u", 0);
  if (job == NULL) {
    return;
  }
  CHECK(jobq_job_id(job) == first);
  expect_duplicate(q, "u", "order-1", first);

  /* released (ready again) */
  CHECK_OK(jobq_release(job, 0));
  jobq_job_free(job);
  expect_duplicate(q, "u", "order-1", first);

  /* scheduled after a failure with attempts left */
  job = tu_reserve(q, "u", 0);
  if (job == NULL) {
    return;
  }
  CHECK_OK(jobq_fail(job, NULL));
  jobq_job_free(job);
  CHECK(tu_stat(q, "u", "scheduled") == 1);
  expect_duplicate(q, "u", "order-1", first);

  /* cancelled: the key is free again */
  CHECK_OK(jobq_cancel(q, first));
  {
    uint64_t second = put_keyed(q, "u", "order-1");
    CHECK(second > first);
    expect_duplicate(q, "u", "order-1", second);
    /* acked: free again */
    job = tu_reserve(q, "u", 0);
    if (job == NULL) {
      return;
    }
    CHECK(jobq_job_id(job) == second);
    tu_ack_free(job);
  }

  /* scheduled by a delay */
  jobq_put_opts_init(&opts);
  opts.unique_key = "order-1";
  opts.delay_ms = 60000;
  {
    uint64_t third = tu_put(q, "u", "later", &opts);
    expect_duplicate(q, "u", "order-1", third);
    CHECK_OK(jobq_cancel(q, third));
  }

  /* dead: free again */
  {
    uint64_t fourth = put_keyed(q, "u", "order-1");
    uint64_t fifth;
    job = tu_reserve(q, "u", 0);
    if (job == NULL) {
      return;
    }
    CHECK(jobq_job_id(job) == fourth);
    CHECK_OK(jobq_bury(job, NULL));
    jobq_job_free(job);
    fifth = put_keyed(q, "u", "order-1");
    CHECK(fifth > fourth);
    TU_CHECK_COUNTS(q, "u", 1, 0, 0, 1);

    /* kick must not revive the dead one next to the live holder... */
    {
      uint64_t kicked = 99;
      CHECK_OK(jobq_kick(q, "u", 10, &kicked));
      CHECK(kicked == 0);
      TU_CHECK_COUNTS(q, "u", 1, 0, 0, 1);
    }
    /* ...but may once the key is free. */
    job = tu_reserve(q, "u", 0);
    if (job == NULL) {
      return;
    }
    CHECK(jobq_job_id(job) == fifth);
    tu_ack_free(job);
    {
      uint64_t kicked = 99;
      CHECK_OK(jobq_kick(q, "u", 10, &kicked));
      CHECK(kicked == 1);
    }
    expect_duplicate(q, "u", "order-1", fourth);
    job = tu_reserve(q, "u", 0);
    if (job != NULL) {
      CHECK(jobq_job_id(job) == fourth);
      tu_ack_free(job);
    }
  }
  TU_CHECK_COUNTS(q, "u", 0, 0, 0, 0);
}

/* A job that died by exhausting its attempts frees its key too. */
static void test_unique_after_attempts(jobq *q) {
  jobq_put_opts opts = keyed("k");
  jobq_job *job;
  uint64_t id;
  opts.max_attempts = 1;
  tu_put(q, "ua", "x", &opts);
  job = tu_reserve(q, "ua", 0);
  if (job == NULL) {
    return;
  }
  CHECK_OK(jobq_fail(job, NULL));
  jobq_job_free(job);
  CHECK(tu_stat(q, "ua", "dead") == 1);
  id = put_keyed(q, "ua", "k");
  CHECK(id != 0);
  job = tu_reserve(q, "ua", 0);
  tu_ack_free(job);
}

static void test_batch(jobq *q) {
  static const char *texts[] = {"first", "", "third\0with nul", "fourth"};
  jobq_payload items[4];
  uint64_t ids[4] = {0, 0, 0, 0};
  int i;
  for (i = 0; i < 4; i++) {
    items[i].data = texts[i];
    items[i].len = strlen(texts[i]);
  }
  items[1].data = NULL; /* NULL with len 0: an empty payload */
  items[2].len = 15;

  CHECK_OK(jobq_put_batch(q, "b", items, 4, NULL, ids));
  for (i = 1; i < 4; i++) {
    CHECK(ids[i] > ids[i - 1]);
  }
  TU_CHECK_COUNTS(q, "b", 4, 0, 0, 0);
  for (i = 0; i < 4; i++) {
    size_t len = 999;
    const uint8_t *data;
    jobq_job *job = tu_reserve(q, "b", 0);
    if (job == NULL) {
      break;
    }
    CHECK(jobq_job_id(job) == ids[i]);
    CHECK(jobq_job_attempt(job) == 1);
    data = jobq_job_payload(job, &len);
    CHECK(len == items[i].len);
    if (len > 0) {
      CHECK(data != NULL && memcmp(data, texts[i], len) == 0);
    }
    tu_ack_free(job);
  }

  /* out_ids is optional. */
  CHECK_OK(jobq_put_batch(q, "b", items, 2, NULL, NULL));
  TU_CHECK_COUNTS(q, "b", 2, 0, 0, 0);
  for (i = 0; i < 2; i++) {
    tu_ack_free(tu_reserve(q, "b", 0));
  }
}

/* Options apply to every job of the batch. */
static void test_batch_opts(jobq *q) {
  jobq_payload items[3];
  uint64_t ids[3] = {0, 0, 0};
  uint64_t urgent;
  jobq_put_opts opts;
  int i;
  for (i = 0; i < 3; i++) {
    items[i].data = "x";
    items[i].len = 1;
  }
  jobq_put_opts_init(&opts);
  opts.delay_ms = 60000;
  CHECK_OK(jobq_put_batch(q, "bd", items, 3, &opts, ids));
  TU_CHECK_COUNTS(q, "bd", 0, 3, 0, 0);
  tu_expect_nothing(q, "bd", 0);
  for (i = 0; i < 3; i++) {
    CHECK_OK(jobq_cancel(q, ids[i]));
  }

  jobq_put_opts_init(&opts);
  opts.priority = 10;
  CHECK_OK(jobq_put_batch(q, "bp", items, 3, &opts, ids));
  opts.priority = 5;
  urgent = tu_put(q, "bp", "urgent", &opts);
  {
    jobq_job *job = tu_reserve(q, "bp", 0);
    if (job != NULL) {
      CHECK(jobq_job_id(job) == urgent);
      tu_ack_free(job);
    }
  }
  for (i = 0; i < 3; i++) {
    jobq_job *job = tu_reserve(q, "bp", 0);
    if (job == NULL) {
      break;
    }
    CHECK(jobq_job_id(job) == ids[i]);
    tu_ack_free(job);
  }
}

static void test_batch_unique(jobq *q) {
  jobq_payload items[2];
  uint64_t ids[2] = {ID_SENTINEL, ID_SENTINEL};
  jobq_put_opts opts = keyed("batch-key");
  items[0].data = "a";
  items[0].len = 1;
  items[1].data = "b";
  items[1].len = 1;

  /* One key cannot name two jobs. */
  CHECK_STATUS(jobq_put_batch(q, "bu", items, 2, &opts, ids),
               JOBQ_E_INVALID_ARG);
  CHECK(jobq_last_error()[0] != '\0');
  CHECK(ids[0] == ID_SENTINEL && ids[1] == ID_SENTINEL);
  TU_CHECK_COUNTS(q, "bu", 0, 0, 0, 0);

  /* A batch of one with a key is just a keyed put. */
  CHECK_OK(jobq_put_batch(q, "bu", items, 1, &opts, ids));
  CHECK(ids[0] != ID_SENTINEL && ids[1] == ID_SENTINEL);
  expect_duplicate(q, "bu", "batch-key", ids[0]);
  CHECK_OK(jobq_cancel(q, ids[0]));
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  jobq *q;
  tu_watchdog();
  q = tu_open(dir, "q.db", CFG);
  test_unique_live_states(q);
  test_unique_after_attempts(q);
  test_batch(q);
  test_batch_opts(q);
  test_batch_unique(q);
  CHECK_OK(jobq_close(q));
  return check_finish("test_unique_batch");
}
