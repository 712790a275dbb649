/* mq_after.c: the POSIX message queue of docs/migrating.md, moved to jobq.
 *
 *   mq_after STORE put PRIO TEXT...   producer: one job per TEXT, mq priority PRIO
 *   mq_after STORE work [IDLE_MS]     worker: until no job came for IDLE_MS
 *                                     (default: forever)
 *   mq_after STORE drain MQNAME       moves the messages queued in MQNAME
 *                                     (e.g. /orders) into jobq
 *
 * STORE is a queue file or a postgresql:// URL. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobq.h"

#define QUEUE "orders"

/* The application's handler, unchanged. */
static void process_order(const uint8_t *msg, size_t len) {
  printf("order %.*s\n", (int)len, (const char *)msg);
}

/* mq receives the larger priority first, jobq runs the smaller first (both
 * FIFO within one): negating keeps the order, 0..MQ_PRIO_MAX-1 -> 0..-(MAX-1). */
static int32_t jobq_priority(unsigned mq_prio) {
  return -(int32_t)mq_prio;
}

/* Was mq_send(mq, msg, len, prio). */
static int submit(jobq *q, const void *msg, size_t len, unsigned prio) {
  jobq_put_opts opts;
  jobq_status st;
  jobq_put_opts_init(&opts);
  opts.priority = jobq_priority(prio);
  st = jobq_put(q, QUEUE, msg, len, &opts, NULL); /* never blocks on a full queue */
  if (st != JOBQ_OK) fprintf(stderr, "put: %s: %s\n", jobq_status_str(st), jobq_last_error());
  return st == JOBQ_OK ? 0 : -1;
}

/* Was: for (;;) { n = mq_receive(...); process_order(buf, n); } */
static int work(jobq *q, int64_t idle_ms) {
  jobq_job *job;
  jobq_status st;
  while ((st = jobq_reserve(q, QUEUE, idle_ms, &job)) == JOBQ_OK) {
    size_t len;
    const uint8_t *msg = jobq_job_payload(job, &len);
    process_order(msg, len);
    jobq_ack(job); /* the message is gone only now, not at mq_receive */
    jobq_job_free(job);
  }
  return st == JOBQ_TIMEOUT ? 0 : -1;
}

/* The drain: receives what is queued in `name`, without waiting, and puts
 * it with its priority. A message whose put fails is sent back (to the end
 * of its priority). A crash between mq_receive and the end of the put
 * loses that message, as a crash after mq_receive always did. */
static int drain(jobq *q, const char *name) {
  struct mq_attr attr;
  unsigned prio;
  ssize_t n;
  char *buf;
  mqd_t mq = mq_open(name, O_RDWR | O_NONBLOCK);
  if (mq == (mqd_t)-1 || mq_getattr(mq, &attr) != 0 || (buf = malloc((size_t)attr.mq_msgsize)) == NULL) {
    perror(name);
    return -1;
  }
  while ((n = mq_receive(mq, buf, (size_t)attr.mq_msgsize, &prio)) >= 0) {
    if (submit(q, buf, (size_t)n, prio) != 0) {
      mq_send(mq, buf, (size_t)n, prio);
      break;
    }
  }
  free(buf);
  mq_close(mq);
  return n < 0 && errno == EAGAIN ? 0 : -1; /* EAGAIN: the queue is empty */
}

int main(int argc, char **argv) {
  jobq *q;
  int i, rc = 0;
  if (argc < 3) {
    fprintf(stderr, "usage: %s STORE put PRIO TEXT... | work [IDLE_MS] | drain MQNAME\n", argv[0]);
    return 2;
  }
  if (jobq_open(argv[1], NULL, &q) != JOBQ_OK) {
    fprintf(stderr, "open %s: %s\n", argv[1], jobq_last_error());
    return 1;
  }
  if (strcmp(argv[2], "put") == 0 && argc > 3) {
    for (i = 4; i < argc && rc == 0; i++) rc = submit(q, argv[i], strlen(argv[i]), (unsigned)atoi(argv[3]));
  } else if (strcmp(argv[2], "work") == 0) {
    rc = work(q, argc > 3 ? atoll(argv[3]) : -1);
  } else if (strcmp(argv[2], "drain") == 0 && argc == 4) {
    rc = drain(q, argv[3]);
  } else {
    rc = -1;
    fprintf(stderr, "%s: unknown command %s\n", argv[0], argv[2]);
  }
  jobq_close(q);
  return rc == 0 ? 0 : 1;
}
