/* Helpers shared by the C test programs, on top of check.h. Everything is
 * static inline so a program that uses only some of them still compiles
 * warning-free under -Wall -Wextra -Werror. */
#ifndef JOBQ_TESTUTIL_H
#define JOBQ_TESTUTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* How slow this environment is: JOBQ_TEST_SLOW (an integer factor; the
 * runner sets 20 under a JOBQ_C_TEST_WRAPPER such as valgrind, 1 natively).
 * Read on every call (getenv is cheap and needs no shared cache between
 * threads); values < 1 or unparsable count as 1. */
static inline int64_t tu_slow(void) {
  const char *e = getenv("JOBQ_TEST_SLOW");
  long v = e != NULL ? strtol(e, NULL, 10) : 1;
  return v < 1 ? 1 : v > 1000 ? 1000 : (int64_t)v;
}

/* Scales a duration that a check depends on: a "must happen within" bound,
 * a "must not happen yet" window, or a short lease/delay whose running out
 * early would break a check. Never used to weaken what a check asserts. */
#define TU_SCALE(ms) ((int64_t)(ms) * tu_slow())

/* Generous bound for things that must happen (5 s natively). Waits that use
 * it return as soon as the thing happens, so it costs nothing when it does. */
#define TU_MUST_MS TU_SCALE(5000)

/* A config JSON built at run time (for scaled values), in one of a few
 * rotating static buffers, so a couple may be live at once. */
static inline const char *tu_cfg(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline const char *tu_cfg(const char *fmt, ...) {
  static char bufs[4][512];
  static int next;
  char *buf = bufs[next++ % 4];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof bufs[0], fmt, ap);
  va_end(ap);
  return buf;
}

static inline void tu_sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

static inline int64_t tu_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A program that hangs (a reserve that is never woken, a stop that never
 * returns) must fail rather than stall CI; SIGALRM's default action kills
 * the process with a non-zero status. 2 minutes natively; scaled down from
 * 40 to 10 minutes per program under valgrind (JOBQ_TEST_SLOW=20). */
static inline void tu_watchdog(void) {
  alarm((unsigned)(60 + 30 * tu_slow()));
}

static inline const char *tu_dir(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <empty-temp-dir>\n", argv[0]);
    exit(2);
  }
  return argv[1];
}

static inline jobq *tu_open(const char *dir, const char *file,
                            const char *cfg) {
  jobq *q = NULL;
  CHECK_OK(jobq_open(check_path(dir, file), cfg, &q));
  CHECK(q != NULL);
  return q;
}

static inline uint64_t tu_put(jobq *q, const char *queue, const char *text,
                              const jobq_put_opts *opts) {
  uint64_t id = 0;
  CHECK_OK(jobq_put(q, queue, text, strlen(text), opts, &id));
  CHECK(id != 0);
  return id;
}

/* Reserves and expects a job; NULL (after a failed check) if none came. */
static inline jobq_job *tu_reserve(jobq *q, const char *queue,
                                   int64_t timeout_ms) {
  jobq_job *job = NULL;
  CHECK_OK(jobq_reserve(q, queue, timeout_ms, &job));
  CHECK(job != NULL);
  return job;
}

/* Expects that nothing is delivered within timeout_ms. */
static inline void tu_expect_nothing(jobq *q, const char *queue,
                                     int64_t timeout_ms) {
  jobq_job *job = NULL;
  jobq_status st = jobq_reserve(q, queue, timeout_ms, &job);
  CHECK_STATUS(st, JOBQ_TIMEOUT);
  CHECK(job == NULL);
  if (st == JOBQ_OK) {
    jobq_job_free(job);
  }
}

/* 1 when the job's payload is exactly the bytes of text. */
static inline int tu_payload_is(const jobq_job *job, const char *text) {
  size_t len = (size_t)-1;
  const uint8_t *data = jobq_job_payload(job, &len);
  size_t want = strlen(text);
  if (len != want) {
    return 0;
  }
  return want == 0 || (data != NULL && memcmp(data, text, want) == 0);
}

/* Ack (and free) a job, expecting success. */
static inline void tu_ack_free(jobq_job *job) {
  if (job != NULL) {
    CHECK_OK(jobq_ack(job));
  }
  jobq_job_free(job);
}

/* Finds the object that follows "key": at or after from; returns a pointer
 * to its '{' and sets *end to its matching '}' (string-aware), else NULL. */
static inline const char *tu_json_object(const char *from, const char *key,
                                         const char **end) {
  char quoted[256];
  const char *p;
  int depth = 0;
  int in_str = 0;
  snprintf(quoted, sizeof quoted, "\"%s\"", key);
  p = strstr(from, quoted);
  if (p == NULL) {
    return NULL;
  }
  p += strlen(quoted);
  while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
    p++;
  }
  if (*p != ':') {
    return NULL;
  }
  p++;
  while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
    p++;
  }
  if (*p != '{') {
    return NULL;
  }
  from = p;
  for (; *p != '\0'; p++) {
    if (in_str) {
      if (*p == '\\' && p[1] != '\0') {
        p++;
      } else if (*p == '"') {
        in_str = 0;
      }
    } else if (*p == '"') {
      in_str = 1;
    } else if (*p == '{') {
      depth++;
    } else if (*p == '}') {
      depth--;
      if (depth == 0) {
        *end = p;
        return from;
      }
    }
  }
  return NULL;
}

/* A count from a stats JSON text: queues.<queue>.<field>. A queue absent
 * from the stats counts as 0 (it holds no jobs); -1 means the JSON did not
 * have the documented shape. */
static inline long tu_stat_in(const char *json, const char *queue,
                              const char *field) {
  const char *queues, *queues_end, *obj, *obj_end, *p;
  char quoted[256];
  char *num_end = NULL;
  long v;
  queues = tu_json_object(json, "queues", &queues_end);
  if (queues == NULL) {
    return -1;
  }
  obj = tu_json_object(queues, queue, &obj_end);
  if (obj == NULL || obj > queues_end) {
    return 0;
  }
  snprintf(quoted, sizeof quoted, "\"%s\"", field);
  p = strstr(obj, quoted);
  if (p == NULL || p > obj_end) {
    return -1;
  }
  p += strlen(quoted);
  while (*p == ' ' || *p == ':') {
    p++;
  }
  v = strtol(p, &num_end, 10);
  return num_end != p ? v : -1;
}

/* One count from one jobq_stats_json call; -2 if that call failed. To
 * compare or add several counts, take them from one snapshot (tu_counts):
 * two calls can straddle a job's move from one state to another. */
static inline long tu_stat(jobq *q, const char *queue, const char *field) {
  char *json = NULL;
  long value;
  if (jobq_stats_json(q, &json) != JOBQ_OK || json == NULL) {
    return -2;
  }
  value = tu_stat_in(json, queue, field);
  jobq_string_free(json);
  return value;
}

/* All four documented counts of one queue from ONE stats call. */
typedef struct tu_counts {
  long ready, scheduled, reserved, dead;
} tu_counts;

static inline tu_counts tu_counts_of(jobq *q, const char *queue) {
  tu_counts c = {-2, -2, -2, -2};
  char *json = NULL;
  if (jobq_stats_json(q, &json) != JOBQ_OK || json == NULL) {
    return c;
  }
  c.ready = tu_stat_in(json, queue, "ready");
  c.scheduled = tu_stat_in(json, queue, "scheduled");
  c.reserved = tu_stat_in(json, queue, "reserved");
  c.dead = tu_stat_in(json, queue, "dead");
  jobq_string_free(json);
  return c;
}

/* Polls a stats count until it equals want or timeout_ms passes; returns
 * the last value seen. For state changes that may settle asynchronously. */
static inline long tu_wait_stat(jobq *q, const char *queue, const char *field,
                                long want, int64_t timeout_ms) {
  int64_t deadline = tu_now_ms() + timeout_ms;
  long v = tu_stat(q, queue, field);
  while (v != want && tu_now_ms() < deadline) {
    tu_sleep_ms(5);
    v = tu_stat(q, queue, field);
  }
  return v;
}

/* Checks all four documented counts of one queue, read atomically from one
 * stats call; prints what it saw when they differ. */
#define TU_CHECK_COUNTS(q, queue, ready_, scheduled_, reserved_, dead_)        \
  do {                                                                         \
    tu_counts tu_c_ = tu_counts_of((q), (queue));                              \
    int tu_before_ = check_failures;                                           \
    CHECK(tu_c_.ready == (ready_));                                            \
    CHECK(tu_c_.scheduled == (scheduled_));                                    \
    CHECK(tu_c_.reserved == (reserved_));                                      \
    CHECK(tu_c_.dead == (dead_));                                              \
    if (check_failures != tu_before_) {                                        \
      fprintf(stderr,                                                          \
              "  queue %s: ready %ld scheduled %ld reserved %ld dead %ld\n",  \
              (queue), tu_c_.ready, tu_c_.scheduled, tu_c_.reserved,           \
              tu_c_.dead);                                                     \
    }                                                                          \
  } while (0)

/* Forked children report their checks through a pipe, not their exit
 * status: under valgrind a forked child of a threaded process "leaks"
 * whatever the parent's threads owned, and --error-exitcode turns that into
 * status 1. The child calls tu_child_begin() first and tu_child_report(fd)
 * before _exit; the parent reads one byte and checks it is TU_CHILD_PASSED. */
#define TU_CHILD_PASSED 0xF0
#define TU_CHILD_FAILED 0xF1

/* First thing in a forked child: its verdict counts its own checks, not
 * the failures the parent had before fork() (the parent reports those). */
static inline void tu_child_begin(void) {
  check_failures = 0;
}

static inline void tu_child_report(int fd) {
  unsigned char r = check_failures == 0 ? TU_CHILD_PASSED : TU_CHILD_FAILED;
  fflush(stdout);
  fflush(stderr);
  if (write(fd, &r, 1) != 1) {
    _exit(3);
  }
}

#endif
