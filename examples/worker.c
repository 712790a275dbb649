/* worker: a pool of threads that works the jobs of a queue.
 *
 *   worker FILE QUEUE [THREADS [COUNT]]
 *
 * Runs THREADS (default 4) handler threads. Each job is "processed" by
 * printing it; a payload starting with "fail" asks for a retry, one
 * starting with "poison" is buried (dead letter). Stops after COUNT jobs
 * (default: runs until the queue has been empty for one second), then
 * prints the queue's stats. JOBQ_CONFIG, if set, is the config JSON. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobq.h"

struct progress {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  long handled;
};

/* Called on the pool's threads, several at once: only the shared counter
 * needs a lock. The job handle is valid during the call only. */
static jobq_outcome handle(const jobq_job *job, void *user_data) {
  struct progress *p = user_data;
  size_t len = 0;
  const uint8_t *payload = jobq_job_payload(job, &len);
  jobq_outcome outcome = JOBQ_DONE;
  if (len >= 4 && memcmp(payload, "fail", 4) == 0) {
    outcome = JOBQ_RETRY;
  } else if (len >= 6 && memcmp(payload, "poison", 6) == 0) {
    outcome = JOBQ_BURY;
  }
  printf("job %llu (attempt %u) on %s: %.*s -> %s\n", (unsigned long long)jobq_job_id(job), jobq_job_attempt(job),
         jobq_job_queue(job), (int)len, (const char *)payload,
         outcome == JOBQ_DONE ? "done" : outcome == JOBQ_RETRY ? "retry later" : "buried");
  fflush(stdout);
  pthread_mutex_lock(&p->lock);
  p->handled++;
  pthread_cond_broadcast(&p->changed);
  pthread_mutex_unlock(&p->lock);
  return outcome;
}

int main(int argc, char **argv) {
  jobq *q = NULL;
  jobq_worker *w = NULL;
  jobq_worker_opts opts;
  struct progress p;
  jobq_status st;
  long count = argc > 4 ? atol(argv[4]) : -1;
  char *stats = NULL;

  if (argc < 3) {
    fprintf(stderr, "usage: %s FILE QUEUE [THREADS [COUNT]]\n", argv[0]);
    return 2;
  }
  /* JOBQ_CONFIG: the queue file's settings as JSON, e.g. short retry delays. */
  st = jobq_open(argv[1], getenv("JOBQ_CONFIG"), &q);
  if (st != JOBQ_OK) {
    fprintf(stderr, "worker: cannot open %s: %s: %s\n", argv[1], jobq_status_str(st), jobq_last_error());
    return 1;
  }
  pthread_mutex_init(&p.lock, NULL);
  pthread_cond_init(&p.changed, NULL);
  p.handled = 0;

  jobq_worker_opts_init(&opts);
  opts.concurrency = argc > 3 ? (uint32_t)atoi(argv[3]) : 4;
  st = jobq_worker_start(q, argv[2], &opts, handle, &p, &w);
  if (st != JOBQ_OK) {
    fprintf(stderr, "worker: cannot start: %s: %s\n", jobq_status_str(st), jobq_last_error());
    jobq_close(q);
    return 1;
  }

  /* Wait for COUNT jobs, or for one quiet second. */
  pthread_mutex_lock(&p.lock);
  for (;;) {
    long before = p.handled;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    if (count >= 0 && p.handled >= count) {
      break;
    }
    pthread_cond_timedwait(&p.changed, &p.lock, &until);
    if (count < 0 && p.handled == before) {
      break;
    }
  }
  pthread_mutex_unlock(&p.lock);

  st = jobq_worker_stop(w, -1);
  printf("worker stopped (%s) after %ld handler calls\n", jobq_status_str(st), p.handled);
  if (jobq_stats_json(q, &stats) == JOBQ_OK) {
    printf("stats: %s\n", stats);
    jobq_string_free(stats);
  }
  jobq_close(q);
  pthread_cond_destroy(&p.changed);
  pthread_mutex_destroy(&p.lock);
  return 0;
}
