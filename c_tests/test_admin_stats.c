/* Administration: jobq_cancel in every job state, and the stats JSON
 * (shape, per-queue counts for each state, freeing). */
#include "testutil.h"

static const char *CFG = "{\"durability\":\"normal\",\"backoff_base_ms\":60000,"
                         "\"backoff_max_ms\":60000,\"backoff_jitter\":0}";

static void test_cancel(jobq *q) {
  jobq_put_opts opts;
  jobq_job *job;
  uint64_t ready, delayed, dead, held, failed;

  CHECK_STATUS(jobq_cancel(q, 987654321), JOBQ_E_NOT_FOUND);
  CHECK(jobq_last_error()[0] != '\0');
  CHECK_STATUS(jobq_cancel(q, 0), JOBQ_E_NOT_FOUND);

  ready = tu_put(q, "c", "ready", NULL);
  jobq_put_opts_init(&opts);
  opts.delay_ms = 60000;
  delayed = tu_put(q, "c", "delayed", &opts);
  dead = tu_put(q, "c", "dead", NULL);
  held = tu_put(q, "c", "held", NULL);
  failed = tu_put(q, "c", "failed", NULL);

  /* ready -> skip, dead -> bury, held -> keep, failed -> fail (scheduled). */
  job = tu_reserve(q, "c", 0);
  if (job == NULL) {
    return;
  }
  CHECK(jobq_job_id(job) == ready);
  CHECK_OK(jobq_release(job, 0));
  jobq_job_free(job);
  {
    jobq_job *jobs[4] = {NULL, NULL, NULL, NULL};
    int i;
    for (i = 0; i < 4; i++) {
      jobs[i] = tu_reserve(q, "c", 0);
    }
    /* jobs[0] is `ready` again (smallest id); give it back. */
    if (jobs[0] != NULL) {
      CHECK(jobq_job_id(jobs[0]) == ready);
      CHECK_OK(jobq_release(jobs[0], 0));
    }
    if (jobs[1] != NULL) {
      CHECK(jobq_job_id(jobs[1]) == dead);
      CHECK_OK(jobq_bury(jobs[1], NULL));
    }
    if (jobs[3] != NULL) {
      CHECK(jobq_job_id(jobs[3]) == failed);
      CHECK_OK(jobq_fail(jobs[3], NULL));
    }
    TU_CHECK_COUNTS(q, "c", 1, 2, 1, 1);

    CHECK_OK(jobq_cancel(q, ready));
    CHECK_OK(jobq_cancel(q, delayed));
    CHECK_OK(jobq_cancel(q, dead));
    CHECK_OK(jobq_cancel(q, failed));
    /* A job someone holds a live lease on cannot be pulled from under it. */
    CHECK_STATUS(jobq_cancel(q, held), JOBQ_E_STATE);
    CHECK(jobq_last_error()[0] != '\0');
    TU_CHECK_COUNTS(q, "c", 0, 0, 1, 0);
    /* ...and its holder is unaffected. */
    if (jobs[2] != NULL) {
      CHECK(jobq_job_id(jobs[2]) == held);
      CHECK_OK(jobq_ack(jobs[2]));
    }
    for (i = 0; i < 4; i++) {
      jobq_job_free(jobs[i]);
    }
  }
  /* Gone means gone: a second cancel, or a cancel after ack, finds nothing. */
  CHECK_STATUS(jobq_cancel(q, ready), JOBQ_E_NOT_FOUND);
  CHECK_STATUS(jobq_cancel(q, held), JOBQ_E_NOT_FOUND);
  TU_CHECK_COUNTS(q, "c", 0, 0, 0, 0);
  tu_expect_nothing(q, "c", 0);
  {
    uint64_t kicked = 99;
    CHECK_OK(jobq_kick(q, "c", 10, &kicked));
    CHECK(kicked == 0);
  }
}

/* A delivery whose lease ran out is no longer "currently delivered". */
static void test_cancel_expired(jobq *q) {
  jobq_job *job;
  uint64_t id = tu_put(q, "ce", "x", NULL);
  job = tu_reserve(q, "ce", 0);
  if (job == NULL) {
    return;
  }
  CHECK_OK(jobq_touch(job, 20));
  tu_sleep_ms(80);
  CHECK_OK(jobq_cancel(q, id));
  /* The late holder cannot resurrect or finish it. */
  CHECK(jobq_ack(job) != JOBQ_OK);
  jobq_job_free(job);
  TU_CHECK_COUNTS(q, "ce", 0, 0, 0, 0);
  tu_expect_nothing(q, "ce", 0);
}

static int braces_balanced(const char *s) {
  int depth = 0;
  int in_str = 0;
  for (; *s != '\0'; s++) {
    if (in_str) {
      if (*s == '\\' && s[1] != '\0') {
        s++;
      } else if (*s == '"') {
        in_str = 0;
      }
    } else if (*s == '"') {
      in_str = 1;
    } else if (*s == '{' || *s == '[') {
      depth++;
    } else if (*s == '}' || *s == ']') {
      if (--depth < 0) {
        return 0;
      }
    }
  }
  return depth == 0 && !in_str;
}

static void test_stats_shape(const char *dir) {
  jobq *q = tu_open(dir, "stats.db", CFG);
  char *json = NULL;
  const char *end = NULL;

  /* An empty file still has the documented shape. */
  CHECK_OK(jobq_stats_json(q, &json));
  CHECK(json != NULL);
  if (json != NULL) {
    CHECK(json[0] == '{');
    CHECK(braces_balanced(json));
    CHECK(tu_json_object(json, "queues", &end) != NULL);
    CHECK(strcmp(jobq_last_error(), "") == 0);
    jobq_string_free(json);
  }

  tu_put(q, "alpha", "x", NULL);
  tu_put(q, "alpha", "x", NULL);
  tu_put(q, "beta", "x", NULL);
  json = NULL;
  CHECK_OK(jobq_stats_json(q, &json));
  if (json != NULL) {
    const char *queues = tu_json_object(json, "queues", &end);
    CHECK(braces_balanced(json));
    CHECK(queues != NULL);
    CHECK(strstr(json, "\"alpha\"") != NULL);
    CHECK(strstr(json, "\"beta\"") != NULL);
    /* serde_json's compact form, as the brief documents. */
    CHECK(strstr(json, "\"ready\":2") != NULL);
    CHECK(strstr(json, "\"ready\":1") != NULL);
    jobq_string_free(json);
  }
  TU_CHECK_COUNTS(q, "alpha", 2, 0, 0, 0);
  TU_CHECK_COUNTS(q, "beta", 1, 0, 0, 0);

  /* jobq.h: freeing a string twice is ignored (valgrind sees if it is not). */
  json = NULL;
  CHECK_OK(jobq_stats_json(q, &json));
  jobq_string_free(json);
  jobq_string_free(json);
  CHECK_OK(jobq_close(q));
}

/* Each state lands in its own count, per queue, and counts move as jobs do. */
static void test_stats_counts(const char *dir) {
  jobq *q = tu_open(dir, "counts.db", CFG);
  jobq_put_opts opts;
  jobq_job *held = NULL, *j;
  int i;

  for (i = 0; i < 6; i++) {
    tu_put(q, "s", "x", NULL);
  }
  jobq_put_opts_init(&opts);
  opts.delay_ms = 60000;
  tu_put(q, "s", "later", &opts);
  tu_put(q, "t", "x", NULL);

  held = tu_reserve(q, "s", 0);
  j = tu_reserve(q, "s", 0);
  if (j != NULL) {
    CHECK_OK(jobq_bury(j, NULL));
    jobq_job_free(j);
  }
  j = tu_reserve(q, "s", 0);
  if (j != NULL) {
    CHECK_OK(jobq_fail(j, NULL)); /* 60 s backoff: scheduled */
    jobq_job_free(j);
  }
  j = tu_reserve(q, "s", 0);
  tu_ack_free(j);
  /* s: 2 ready, 2 scheduled (delay + backoff), 1 reserved, 1 dead. */
  TU_CHECK_COUNTS(q, "s", 2, 2, 1, 1);
  TU_CHECK_COUNTS(q, "t", 1, 0, 0, 0);

  tu_ack_free(held);
  TU_CHECK_COUNTS(q, "s", 2, 2, 0, 1);

  /* An expired lease is not "reserved" any more. */
  held = tu_reserve(q, "s", 0);
  if (held != NULL) {
    CHECK_OK(jobq_touch(held, 20));
    tu_sleep_ms(100);
    CHECK(tu_stat(q, "s", "reserved") == 0);
    CHECK(tu_stat(q, "s", "ready") == 2);
    jobq_job_free(held);
  }
  CHECK_OK(jobq_close(q));
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  jobq *q;
  tu_watchdog();
  q = tu_open(dir, "q.db", CFG);
  test_cancel(q);
  test_cancel_expired(q);
  CHECK_OK(jobq_close(q));
  test_stats_shape(dir);
  test_stats_counts(dir);
  jobq_string_free(NULL);
  return check_finish("test_admin_stats");
}
