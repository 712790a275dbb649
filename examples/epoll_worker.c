/* epoll_worker: works several queues from one thread with plain epoll.
 *
 *   epoll_worker [--idle-exit MS] STORE QUEUE...
 *
 * STORE is a file path or a postgresql:// URL. One jobq_watch per QUEUE, a
 * timerfd armed for the soonest delayed job, retry or lease expiry of all the
 * queues, and a signalfd for SIGINT/SIGTERM, all in one epoll set. Each job
 * is "processed" by printing it and acked; a payload starting with "fail" is
 * failed (jobq_fail: retried after backoff, dead after max_attempts).
 * With --idle-exit MS it exits after MS milliseconds without a job.
 * JOBQ_CONFIG, if set, is the config JSON given to jobq_open.
 *
 * The loop for each queue: wait until its watch fd is readable (or the timer
 * fires), jobq_watch_consume (clears the fd, says when the next scheduled
 * job is due), then jobq_reserve(..., 0, ...) until JOBQ_TIMEOUT. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"

/* epoll data of the timer and signal fds; the watches use their index. */
#define TAG_TIMER UINT32_MAX
#define TAG_SIGNAL (UINT32_MAX - 1)

struct watched {
  const char *name;
  jobq_watch *watch;
  int64_t due_at_ms; /* CLOCK_MONOTONIC ms of its next scheduled job; -1: none */
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void jobq_error(const char *what, jobq_status st) {
  fprintf(stderr, "epoll_worker: %s: %s: %s\n", what, jobq_status_str(st), jobq_last_error());
}

/* Handles one job: prints it, then acks it (or fails it). 0, or -1 on an
 * error that should stop the worker. */
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
  if (st == JOBQ_E_STATE) {
    /* The lease expired and the job went to someone else: not fatal. */
    jobq_error(fail ? "fail" : "ack", st);
    return 0;
  }
  if (st != JOBQ_OK) {
    jobq_error(fail ? "fail" : "ack", st);
    return -1;
  }
  return 0;
}

/* Consumes the watch of `w`, then takes the queue's ready jobs. Returns how
 * many were handled, or -1 on an error. */
static long drain(jobq *q, struct watched *w) {
  int64_t due = -1;
  long handled = 0;
  jobq_status st = jobq_watch_consume(w->watch, &due);
  if (st != JOBQ_OK) {
    jobq_error("jobq_watch_consume", st);
    return -1;
  }
  w->due_at_ms = due < 0 ? -1 : now_ms() + due;
  for (;;) {
    jobq_job *job = NULL;
    st = jobq_reserve(q, w->name, 0, &job);
    if (st == JOBQ_TIMEOUT) {
      return handled;
    }
    if (st != JOBQ_OK) {
      jobq_error("jobq_reserve", st);
      return -1;
    }
    if (handle(job) != 0) {
      return -1;
    }
    handled++;
  }
}

/* Arms the timer for the soonest due_at_ms of all queues, or disarms it. */
static int arm_timer(int tfd, const struct watched *ws, int n) {
  struct itimerspec its;
  int64_t soonest = -1;
  int i;
  for (i = 0; i < n; i++) {
    if (ws[i].due_at_ms >= 0 && (soonest < 0 || ws[i].due_at_ms < soonest)) {
      soonest = ws[i].due_at_ms;
    }
  }
  memset(&its, 0, sizeof its);
  if (soonest >= 0) {
    /* Absolute, so a time already past fires at once (0 would disarm). */
    its.it_value.tv_sec = (time_t)(soonest / 1000);
    its.it_value.tv_nsec = (long)(soonest % 1000) * 1000000L + 1;
  }
  if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
    perror("epoll_worker: timerfd_settime");
    return -1;
  }
  return 0;
}

static int add_fd(int ep, int fd, uint32_t tag) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.u32 = tag;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
    perror("epoll_worker: epoll_ctl");
    return -1;
  }
  return 0;
}

static void usage(const char *argv0) {
  fprintf(stderr, "usage: %s [--idle-exit MS] STORE QUEUE...\n", argv0);
}

int main(int argc, char **argv) {
  jobq *q = NULL;
  struct watched *ws = NULL;
  int nq = 0, ep = -1, tfd = -1, sfd = -1, argi = 1, i, rc = 1, stop = 0;
  long idle_exit_ms = -1, handled = 0;
  int64_t last_job_at;
  const char *why = "error";
  sigset_t sigs;
  jobq_status st;

  if (argc > 2 && strcmp(argv[1], "--idle-exit") == 0) {
    char *end = NULL;
    idle_exit_ms = strtol(argv[2], &end, 10);
    if (end == argv[2] || *end != '\0' || idle_exit_ms < 0) {
      fprintf(stderr, "epoll_worker: --idle-exit wants milliseconds, not '%s'\n", argv[2]);
      return 2;
    }
    argi = 3;
  }
  if (argc - argi < 2) {
    usage(argv[0]);
    return 2;
  }
  nq = argc - argi - 1;

  /* Blocked before jobq_open, so the library's threads inherit the mask and
   * the signals reach only the signalfd. */
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &sigs, NULL) != 0) {
    perror("epoll_worker: sigprocmask");
    return 1;
  }

  st = jobq_open(argv[argi], getenv("JOBQ_CONFIG"), &q);
  if (st != JOBQ_OK) {
    fprintf(stderr, "epoll_worker: cannot open %s: %s: %s\n", argv[argi], jobq_status_str(st), jobq_last_error());
    return 1;
  }
  ws = calloc((size_t)nq, sizeof *ws);
  ep = epoll_create1(EPOLL_CLOEXEC);
  tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
  if (ws == NULL || ep < 0 || tfd < 0 || sfd < 0) {
    perror("epoll_worker: setup");
    goto out;
  }
  for (i = 0; i < nq; i++) {
    ws[i].name = argv[argi + 1 + i];
    ws[i].due_at_ms = -1;
    st = jobq_watch_open(q, ws[i].name, &ws[i].watch);
    if (st != JOBQ_OK) {
      fprintf(stderr, "epoll_worker: cannot watch queue '%s': %s: %s\n", ws[i].name, jobq_status_str(st),
              jobq_last_error());
      goto out;
    }
    /* The fd starts readable: the first epoll_wait takes the jobs already there. */
    if (add_fd(ep, jobq_watch_fd(ws[i].watch), (uint32_t)i) != 0) {
      goto out;
    }
  }
  if (add_fd(ep, tfd, TAG_TIMER) != 0 || add_fd(ep, sfd, TAG_SIGNAL) != 0) {
    goto out;
  }
  printf("epoll_worker: watching %d queue%s of %s\n", nq, nq == 1 ? "" : "s", argv[argi]);
  fflush(stdout);

  last_job_at = now_ms();
  while (!stop) {
    struct epoll_event evs[16];
    int timeout = -1, n, k;
    if (idle_exit_ms >= 0) {
      int64_t left = last_job_at + idle_exit_ms - now_ms();
      if (left <= 0) {
        why = "idle";
        break;
      }
      timeout = (int)left;
    }
    n = epoll_wait(ep, evs, (int)(sizeof evs / sizeof evs[0]), timeout);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      perror("epoll_worker: epoll_wait");
      goto out;
    }
    for (k = 0; k < n && !stop; k++) {
      uint32_t tag = evs[k].data.u32;
      long got = 0;
      if (tag == TAG_SIGNAL) {
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
          printf("epoll_worker: %s, stopping\n", strsignal((int)si.ssi_signo));
          why = "signal";
          stop = 1;
        }
      } else if (tag == TAG_TIMER) {
        /* Something scheduled is due: look at every queue whose time came. */
        uint64_t expirations;
        int64_t now = now_ms();
        if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) {
          perror("epoll_worker: read timerfd");
          goto out;
        }
        for (i = 0; i < nq && got >= 0; i++) {
          if (ws[i].due_at_ms >= 0 && ws[i].due_at_ms <= now) {
            long more = drain(q, &ws[i]);
            got = more < 0 ? -1 : got + more;
          }
        }
      } else {
        got = drain(q, &ws[tag]);
      }
      if (got < 0) {
        goto out;
      }
      if (got > 0) {
        handled += got;
        last_job_at = now_ms();
      }
    }
    if (arm_timer(tfd, ws, nq) != 0) {
      goto out;
    }
  }
  rc = 0;

out:
  printf("epoll_worker: %ld jobs handled, exiting (%s)\n", handled, rc == 0 ? why : "error");
  fflush(stdout);
  /* Watches first: jobq_close is JOBQ_E_BUSY while any is open. */
  for (i = 0; ws != NULL && i < nq; i++) {
    st = jobq_watch_close(ws[i].watch);
    if (st != JOBQ_OK) {
      jobq_error("jobq_watch_close", st);
      rc = 1;
    }
  }
  st = jobq_close(q);
  if (st != JOBQ_OK) {
    jobq_error("jobq_close", st);
    rc = 1;
  }
  if (sfd >= 0) close(sfd);
  if (tfd >= 0) close(tfd);
  if (ep >= 0) close(ep);
  free(ws);
  return rc;
}
