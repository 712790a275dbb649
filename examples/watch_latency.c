/*
 * watch_latency: how long an event loop waits to hear of a job put by
 * another process, through a watch fd (jobq_watch_fd).
 *
 *   build/watch_latency [SAMPLES [STORE]]
 *
 * STORE: a queue file (default: a fresh one in /tmp) or a PostgreSQL URL,
 * e.g. "postgresql://postgres@127.0.0.1:5432/test?schema=jobq_wl" (over
 * loopback: what a worker on another host sees, LISTEN/NOTIFY).
 *
 * A forked child opens the store and puts SAMPLES jobs, one every 5 ms,
 * each carrying CLOCK_REALTIME in ns right before jobq_put. The parent
 * sleeps in poll() on the watch fd; when it is readable it calls
 * jobq_watch_consume and takes every ready job with a reserve that does
 * not wait. A sample is put (incl. its commit) + wakeup + that reserve.
 * Durability "normal": the disk's fsync is not part of it.
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"

static const char *CONFIG = "{\"durability\": \"normal\"}";

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int produce(const char *store, int samples) {
  jobq *q;
  if (jobq_open(store, CONFIG, &q) != JOBQ_OK) {
    fprintf(stderr, "child open: %s\n", jobq_last_error());
    return 1;
  }
  for (int i = 0; i < samples; i++) {
    struct timespec gap = {0, 5 * 1000 * 1000};
    nanosleep(&gap, NULL);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%llu", (unsigned long long)now_ns());
    if (jobq_put(q, "w", buf, (size_t)n, NULL, NULL) != JOBQ_OK) {
      fprintf(stderr, "put: %s\n", jobq_last_error());
      return 1;
    }
  }
  return jobq_close(q) == JOBQ_OK ? 0 : 1;
}

int main(int argc, char **argv) {
  int samples = argc > 1 ? atoi(argv[1]) : 500;
  char path[64];
  const char *store = argc > 2 ? argv[2] : NULL;
  if (samples <= 0) samples = 500;
  if (!store) {
    snprintf(path, sizeof path, "/tmp/jobq-watch-latency-%d.db", (int)getpid());
    store = path;
  }
  jobq *q;
  jobq_watch *w;
  if (jobq_open(store, CONFIG, &q) != JOBQ_OK || jobq_watch_open(q, "w", &w) != JOBQ_OK) {
    fprintf(stderr, "open: %s\n", jobq_last_error());
    return 1;
  }
  int64_t next;
  jobq_watch_consume(w, &next); /* a watch starts readable */
  pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) _exit(produce(store, samples));

  double *lat = calloc((size_t)samples, sizeof *lat);
  int got = 0;
  while (lat && got < samples) {
    struct pollfd pfd = {jobq_watch_fd(w), POLLIN, 0};
    if (poll(&pfd, 1, 10000) <= 0) {
      fprintf(stderr, "no wakeup within 10 s after %d samples\n", got);
      return 1;
    }
    jobq_watch_consume(w, &next);
    jobq_job *job;
    while (got < samples && jobq_reserve(q, "w", 0, &job) == JOBQ_OK) {
      uint64_t t = now_ns();
      size_t len;
      const uint8_t *p = jobq_job_payload(job, &len);
      char buf[32] = {0};
      memcpy(buf, p, len < sizeof buf - 1 ? len : sizeof buf - 1);
      lat[got++] = (double)(t - strtoull(buf, NULL, 10)) / 1000.0;
      jobq_ack(job);
      jobq_job_free(job);
    }
  }
  int status = 0;
  waitpid(child, &status, 0);
  qsort(lat, (size_t)got, sizeof *lat, cmp);
#define PCT(p) lat[(int)((double)got * (p) + 0.999999) - 1 < 0 ? 0 : (int)((double)got * (p) + 0.999999) - 1]
  printf("watch fd       samples %4d  p50 %8.1f us  p90 %8.1f us  p99 %8.1f us  max %8.1f us\n", got, PCT(0.50),
         PCT(0.90), PCT(0.99), lat[got - 1]);
  free(lat);
  jobq_watch_close(w);
  jobq_close(q);
  if (store == path) {
    char more[80];
    remove(path);
    snprintf(more, sizeof more, "%s-wal", path);
    remove(more);
    snprintf(more, sizeof more, "%s-shm", path);
    remove(more);
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
