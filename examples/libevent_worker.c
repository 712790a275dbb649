/* libevent_worker: epoll_worker's loop on libevent 2 (Debian: libevent-dev).
 *
 *   libevent_worker [--idle-exit MS] STORE QUEUE...
 *
 * STORE is a file path or a postgresql:// URL. One jobq_watch per QUEUE with
 * an EV_READ|EV_PERSIST event on its fd, one timer event armed for the
 * soonest delayed job, retry or lease expiry of all the queues, and signal
 * events for SIGINT/SIGTERM. Each job is "processed" by printing it and
 * acked; a payload starting with "fail" is failed (jobq_fail: retried after
 * backoff, dead after max_attempts). With --idle-exit MS it exits after MS
 * milliseconds without a job. JOBQ_CONFIG, if set, is the config JSON.
 * Link with -levent. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>

#include "jobq.h"

struct watched;

struct worker {
  jobq *q;
  struct event_base *base;
  struct watched *ws;
  int nq;
  struct event *due_timer;  /* the soonest scheduled job of any queue */
  struct event *idle_timer; /* --idle-exit */
  long idle_exit_ms;
  long handled;
  int failed;
  const char *why;
};

struct watched {
  struct worker *wk;
  const char *name;
  jobq_watch *watch;
  struct event *ready; /* EV_READ|EV_PERSIST on the watch fd */
  int64_t due_at_ms;   /* CLOCK_MONOTONIC ms of its next scheduled job; -1: none */
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval ms_to_tv(int64_t ms) {
  struct timeval tv;
  tv.tv_sec = (time_t)(ms / 1000);
  tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
  return tv;
}

static void jobq_error(const char *what, jobq_status st) {
  fprintf(stderr, "libevent_worker: %s: %s: %s\n", what, jobq_status_str(st), jobq_last_error());
}

/* Stops the loop on an error; main reports it. */
static void give_up(struct worker *wk) {
  wk->failed = 1;
  event_base_loopbreak(wk->base);
}

/* Prints the job, then acks it (or fails it). 0, or -1 on a fatal error. */
static int handle(jobq_job *job) {
  size_t len = 0;
  const uint8_t *payload = jobq_job_payload(job, &len);
  int fail = len >= 4 && memcmp(payload, "fail", 4) == 0;
  jobq_status st;
  printf("job %llu (attempt %u) on %s: %.*s -> %s\n", (unsigned long long)jobq_job_id(job), jobq_job_attempt(job),
         jobq_job_queue(job), (int)len, (const char *)payload, fail ? "failed" : "done");
  fflush(stdout);
  st = fail ? jobq_fail(job, "payload says fail") : jobq_ack(job);
  jobq_job_free(job);
  if (st != JOBQ_OK) {
    jobq_error(fail ? "fail" : "ack", st);
    /* JOBQ_E_STATE: the lease expired and the job went to someone else. */
    return st == JOBQ_E_STATE ? 0 : -1;
  }
  return 0;
}

/* (Re)arms the due timer for the soonest due_at_ms of all queues. */
static void arm_due_timer(struct worker *wk) {
  int64_t soonest = -1;
  int i;
  for (i = 0; i < wk->nq; i++) {
    if (wk->ws[i].due_at_ms >= 0 && (soonest < 0 || wk->ws[i].due_at_ms < soonest)) {
      soonest = wk->ws[i].due_at_ms;
    }
  }
  if (soonest < 0) {
    evtimer_del(wk->due_timer);
  } else {
    int64_t left = soonest - now_ms();
    struct timeval tv = ms_to_tv(left > 0 ? left : 0);
    evtimer_add(wk->due_timer, &tv);
  }
}

static void arm_idle_timer(struct worker *wk) {
  if (wk->idle_exit_ms >= 0) {
    struct timeval tv = ms_to_tv(wk->idle_exit_ms);
    evtimer_add(wk->idle_timer, &tv); /* re-adding moves the deadline */
  }
}

/* Consumes the watch, then takes the queue's ready jobs. */
static void drain(struct watched *w) {
  struct worker *wk = w->wk;
  int64_t due = -1;
  long handled = 0;
  jobq_status st = jobq_watch_consume(w->watch, &due);
  if (st != JOBQ_OK) {
    jobq_error("jobq_watch_consume", st);
    give_up(wk);
    return;
  }
  w->due_at_ms = due < 0 ? -1 : now_ms() + due;
  for (;;) {
    jobq_job *job = NULL;
    st = jobq_reserve(wk->q, w->name, 0, &job);
    if (st == JOBQ_TIMEOUT) {
      break;
    }
    if (st != JOBQ_OK) {
      jobq_error("jobq_reserve", st);
      give_up(wk);
      return;
    }
    if (handle(job) != 0) {
      give_up(wk);
      return;
    }
    handled++;
  }
  if (handled > 0) {
    wk->handled += handled;
    arm_idle_timer(wk);
  }
}

/* The watch fd is readable: the queue may have a ready job. */
static void on_ready(evutil_socket_t fd, short what, void *arg) {
  struct watched *w = arg;
  (void)fd;
  (void)what;
  drain(w);
  arm_due_timer(w->wk);
}

/* Something scheduled is due: look at every queue whose time came. */
static void on_due(evutil_socket_t fd, short what, void *arg) {
  struct worker *wk = arg;
  int64_t now = now_ms();
  int i;
  (void)fd;
  (void)what;
  for (i = 0; i < wk->nq && !wk->failed; i++) {
    if (wk->ws[i].due_at_ms >= 0 && wk->ws[i].due_at_ms <= now) {
      drain(&wk->ws[i]);
    }
  }
  arm_due_timer(wk);
}

static void on_idle(evutil_socket_t fd, short what, void *arg) {
  struct worker *wk = arg;
  (void)fd;
  (void)what;
  wk->why = "idle";
  event_base_loopbreak(wk->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  struct worker *wk = arg;
  (void)what;
  printf("libevent_worker: %s, stopping\n", strsignal((int)sig));
  wk->why = "signal";
  event_base_loopbreak(wk->base);
}

int main(int argc, char **argv) {
  struct worker wk;
  struct event *sigint = NULL, *sigterm = NULL;
  int argi = 1, i, rc = 1;
  jobq_status st;

  memset(&wk, 0, sizeof wk);
  wk.idle_exit_ms = -1;
  wk.why = "error";
  if (argc > 2 && strcmp(argv[1], "--idle-exit") == 0) {
    char *end = NULL;
    wk.idle_exit_ms = strtol(argv[2], &end, 10);
    if (end == argv[2] || *end != '\0' || wk.idle_exit_ms < 0) {
      fprintf(stderr, "libevent_worker: --idle-exit wants milliseconds, not '%s'\n", argv[2]);
      return 2;
    }
    argi = 3;
  }
  if (argc - argi < 2) {
    fprintf(stderr, "usage: %s [--idle-exit MS] STORE QUEUE...\n", argv[0]);
    return 2;
  }
  wk.nq = argc - argi - 1;

  st = jobq_open(argv[argi], getenv("JOBQ_CONFIG"), &wk.q);
  if (st != JOBQ_OK) {
    fprintf(stderr, "libevent_worker: cannot open %s: %s: %s\n", argv[argi], jobq_status_str(st), jobq_last_error());
    return 1;
  }
  wk.base = event_base_new();
  wk.ws = calloc((size_t)wk.nq, sizeof *wk.ws);
  if (wk.base == NULL || wk.ws == NULL) {
    fprintf(stderr, "libevent_worker: cannot set up the event base\n");
    goto out;
  }
  wk.due_timer = evtimer_new(wk.base, on_due, &wk);
  wk.idle_timer = evtimer_new(wk.base, on_idle, &wk);
  sigint = evsignal_new(wk.base, SIGINT, on_signal, &wk);
  sigterm = evsignal_new(wk.base, SIGTERM, on_signal, &wk);
  if (wk.due_timer == NULL || wk.idle_timer == NULL || sigint == NULL || sigterm == NULL ||
      evsignal_add(sigint, NULL) != 0 || evsignal_add(sigterm, NULL) != 0) {
    fprintf(stderr, "libevent_worker: cannot set up timer and signal events\n");
    goto out;
  }
  for (i = 0; i < wk.nq; i++) {
    struct watched *w = &wk.ws[i];
    w->wk = &wk;
    w->name = argv[argi + 1 + i];
    w->due_at_ms = -1;
    st = jobq_watch_open(wk.q, w->name, &w->watch);
    if (st != JOBQ_OK) {
      fprintf(stderr, "libevent_worker: cannot watch queue '%s': %s: %s\n", w->name, jobq_status_str(st),
              jobq_last_error());
      goto out;
    }
    /* The fd starts readable: the loop's first turn takes the jobs already there. */
    w->ready = event_new(wk.base, jobq_watch_fd(w->watch), EV_READ | EV_PERSIST, on_ready, w);
    if (w->ready == NULL || event_add(w->ready, NULL) != 0) {
      fprintf(stderr, "libevent_worker: cannot add the watch of '%s' to the event base\n", w->name);
      goto out;
    }
  }
  arm_idle_timer(&wk);
  printf("libevent_worker: watching %d queue%s of %s (libevent %s, %s)\n", wk.nq, wk.nq == 1 ? "" : "s", argv[argi],
         event_get_version(), event_base_get_method(wk.base));
  fflush(stdout);

  if (event_base_dispatch(wk.base) < 0) {
    fprintf(stderr, "libevent_worker: event_base_dispatch failed\n");
    goto out;
  }
  rc = wk.failed ? 1 : 0;

out:
  printf("libevent_worker: %ld jobs handled, exiting (%s)\n", wk.handled, rc == 0 ? wk.why : "error");
  fflush(stdout);
  /* Events off the fds before the watches close them; watches before jobq_close. */
  for (i = 0; wk.ws != NULL && i < wk.nq; i++) {
    if (wk.ws[i].ready != NULL) {
      event_free(wk.ws[i].ready);
    }
    st = jobq_watch_close(wk.ws[i].watch);
    if (st != JOBQ_OK) {
      jobq_error("jobq_watch_close", st);
      rc = 1;
    }
  }
  st = jobq_close(wk.q);
  if (st != JOBQ_OK) {
    jobq_error("jobq_close", st);
    rc = 1;
  }
  if (sigint != NULL) event_free(sigint);
  if (sigterm != NULL) event_free(sigterm);
  if (wk.due_timer != NULL) event_free(wk.due_timer);
  if (wk.idle_timer != NULL) event_free(wk.idle_timer);
  if (wk.base != NULL) event_base_free(wk.base);
  free(wk.ws);
  return rc;
}
