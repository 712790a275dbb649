/* Helpers shared by the C test programs, on top of check.h. Everything is
 * static inline so a program that uses only some of them still compiles
 * warning-free under -Wall -Wextra -Werror. */
#ifndef JOBQ_TESTUTIL_H
#define JOBQ_TESTUTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* A fast config for anything time-based; each test adds what it needs. */
#define TU_FAST_CFG                                                            \
  "{\"durability\":\"normal\",\"lease_ms\":100,\"backoff_base_ms\":20,"       \
  "\"backoff_max_ms\":100,\"backoff_jitter\":0}"

/* Generous bound for things that must happen; valgrind is ~20x slower. */
#define TU_MUST_MS 5000

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
 * the process with a non-zero status. The bound leaves room for valgrind. */
static inline void tu_watchdog(void) { alarm(120); }

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

/* A count from stats_json: queues.<queue>.<field>. A queue absent from the
 * stats counts as 0 (it holds no jobs); -1 means the JSON did not have the
 * documented shape, -2 that jobq_stats_json itself failed. */
static inline long tu_stat(jobq *q, const char *queue, const char *field) {
  char *json = NULL;
  const char *queues, *queues_end, *obj, *obj_end, *p;
  char quoted[256];
  long value = -1;
  if (jobq_stats_json(q, &json) != JOBQ_OK || json == NULL) {
    return -2;
  }
  queues = tu_json_object(json, "queues", &queues_end);
  if (queues == NULL) {
    goto done;
  }
  obj = tu_json_object(queues, queue, &obj_end);
  if (obj == NULL || obj > queues_end) {
    value = 0;
    goto done;
  }
  snprintf(quoted, sizeof quoted, "\"%s\"", field);
  p = strstr(obj, quoted);
  if (p == NULL || p > obj_end) {
    goto done;
  }
  p += strlen(quoted);
  while (*p == ' ' || *p == ':') {
    p++;
  }
  {
    char *num_end = NULL;
    long v = strtol(p, &num_end, 10);
    if (num_end != p) {
      value = v;
    }
  }
done:
  jobq_string_free(json);
  return value;
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

/* Checks all four documented counts of one queue at once. */
#define TU_CHECK_COUNTS(q, queue, ready, scheduled, reserved, dead)            \
  do {                                                                         \
    CHECK(tu_stat((q), (queue), "ready") == (ready));                          \
    CHECK(tu_stat((q), (queue), "scheduled") == (scheduled));                  \
    CHECK(tu_stat((q), (queue), "reserved") == (reserved));                    \
    CHECK(tu_stat((q), (queue), "dead") == (dead));                            \
  } while (0)

#endif
