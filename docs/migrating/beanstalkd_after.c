/* beanstalkd_after.c: the beanstalkd producer and worker of
 * docs/migrating.md, moved to libjobq. They share the store with
 * jobq-beanstalkd, which keeps serving the clients not moved yet.
 *
 *   beanstalkd_after STORE put TUBE PRI DELAY TTR TEXT...   producer (seconds)
 *   beanstalkd_after STORE work TUBE [IDLE_MS]              worker: until no job
 *                                                           came for IDLE_MS
 *                                                           (default: forever)
 *
 * STORE is the queue file or postgresql:// URL jobq-beanstalkd serves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobq.h"

enum order_result { ORDER_DONE, ORDER_TRY_LATER, ORDER_BAD };

/* The application's handler, unchanged. */
static enum order_result process_order(const uint8_t *data, size_t len) {
  printf("order %.*s\n", (int)len, (const char *)data);
  return len >= 3 && memcmp(data, "bad", 3) == 0 ? ORDER_BAD : ORDER_DONE;
}

/* beanstalkd: priority 0 is the most urgent of 0..2^32-1. jobq: the
 * smallest int32_t runs first. jobq-beanstalkd maps p to p - 2^31, which
 * keeps the order and loses nothing; C code that puts with this mapping
 * interleaves with the jobs beanstalkd clients put through the server. */
static int32_t jobq_priority(uint32_t pri) {
  return (int32_t)((int64_t)pri - 2147483648LL);
}

/* Was: bs_use(fd, tube); bs_put(fd, pri, delay, ttr, data, len). */
static int put_job(jobq *q, const char *tube, const void *data, size_t len,
                   uint32_t pri, uint32_t delay, uint32_t ttr) {
  jobq_put_opts opts;
  jobq_status st;
  uint64_t id; /* the id beanstalkd clients see */
  jobq_put_opts_init(&opts);
  opts.priority = jobq_priority(pri);
  opts.delay_ms = (uint64_t)delay * 1000;
  opts.lease_ms = (uint64_t)(ttr > 0 ? ttr : 1) * 1000; /* the TTR; 0 is 1 s, as in beanstalkd */
  opts.max_attempts = UINT32_MAX; /* beanstalkd never buries by itself; nor does the server */
  st = jobq_put(q, tube, data, len, &opts, &id);
  if (st != JOBQ_OK) {
    fprintf(stderr, "put: %s: %s\n", jobq_status_str(st), jobq_last_error());
    return -1;
  }
  printf("INSERTED %llu\n", (unsigned long long)id);
  return 0;
}

/* Was: bs_watch(fd, tube); for (;;) { bs_reserve; ...; bs_delete or
 * bs_release or bs_bury; bs_free_job }. */
static int work(jobq *q, const char *tube, int64_t idle_ms) {
  jobq_job *job;
  jobq_status st;
  while ((st = jobq_reserve(q, tube, idle_ms, &job)) == JOBQ_OK) {
    size_t len;
    const uint8_t *data = jobq_job_payload(job, &len);
    switch (process_order(data, len)) {
    case ORDER_DONE:
      jobq_ack(job); /* was bs_delete */
      break;
    case ORDER_TRY_LATER:
      jobq_release(job, 30000); /* was bs_release(fd, id, pri, 30); the priority stays */
      break;
    case ORDER_BAD:
      jobq_bury(job, "bad order"); /* was bs_bury; a kick revives it */
      break;
    }
    jobq_job_free(job);
  }
  return st == JOBQ_TIMEOUT ? 0 : -1;
}

int main(int argc, char **argv) {
  jobq *q;
  int i, rc = 0;
  if (argc < 4) {
    fprintf(stderr, "usage: %s STORE put TUBE PRI DELAY TTR TEXT... | work TUBE [IDLE_MS]\n", argv[0]);
    return 2;
  }
  if (jobq_open(argv[1], NULL, &q) != JOBQ_OK) {
    fprintf(stderr, "open %s: %s\n", argv[1], jobq_last_error());
    return 1;
  }
  if (strcmp(argv[2], "put") == 0 && argc > 6) {
    uint32_t pri = (uint32_t)strtoul(argv[4], NULL, 10);
    uint32_t delay = (uint32_t)strtoul(argv[5], NULL, 10);
    uint32_t ttr = (uint32_t)strtoul(argv[6], NULL, 10);
    for (i = 7; i < argc && rc == 0; i++) rc = put_job(q, argv[3], argv[i], strlen(argv[i]), pri, delay, ttr);
  } else if (strcmp(argv[2], "work") == 0) {
    rc = work(q, argv[3], argc > 4 ? atoll(argv[4]) : -1);
  } else {
    rc = -1;
    fprintf(stderr, "%s: unknown command %s\n", argv[0], argv[2]);
  }
  jobq_close(q);
  return rc == 0 ? 0 : 1;
}
