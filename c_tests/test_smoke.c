/* The walking skeleton: open, put, reserve, ack, stats, close. */
#include "check.h"

int main(int argc, char **argv) {
  jobq *q = NULL;
  jobq_job *job = NULL;
  uint64_t id = 0;
  size_t len = 0;
  char *json = NULL;
  const uint8_t *payload;
  (void)argc;

  CHECK_OK(jobq_open(check_path(argv[1], "q.db"), NULL, &q));
  CHECK_OK(jobq_put(q, "mail", "hello", 5, NULL, &id));
  CHECK(id > 0);
  CHECK_OK(jobq_reserve(q, "mail", 1000, &job));
  CHECK(jobq_job_id(job) == id);
  payload = jobq_job_payload(job, &len);
  CHECK(len == 5 && memcmp(payload, "hello", 5) == 0);
  CHECK(strcmp(jobq_job_queue(job), "mail") == 0);
  CHECK(jobq_job_attempt(job) == 1);
  CHECK_OK(jobq_ack(job));
  jobq_job_free(job);
  CHECK_STATUS(jobq_reserve(q, "mail", 0, &job), JOBQ_TIMEOUT);
  CHECK_OK(jobq_stats_json(q, &json));
  CHECK(json != NULL && strstr(json, "\"mail\"") != NULL);
  jobq_string_free(json);
  CHECK_OK(jobq_close(q));
  return check_finish("test_smoke");
}
