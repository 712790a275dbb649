/* Tiny assertion helpers shared by the C tests. Each test is one program:
 *   argv[1] = a fresh, empty, writable directory for the test's files.
 * It exits 0 when every check passed; a failed check prints file:line and
 * the expression, then the program exits 1 at the end (checks go on so one
 * run shows every failure). */
#ifndef JOBQ_CHECK_H
#define JOBQ_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jobq.h"

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    check_count++;                                                             \
    if (!(cond)) {                                                             \
      check_failures++;                                                        \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, \
              __LINE__, #cond, jobq_last_error());                             \
    }                                                                          \
  } while (0)

/* Checks a call's status; prints both codes' names when they differ. */
#define CHECK_STATUS(expr, want)                                               \
  do {                                                                         \
    int check_got_ = (int)(expr);                                              \
    int check_want_ = (int)(want);                                             \
    check_count++;                                                             \
    if (check_got_ != check_want_) {                                           \
      check_failures++;                                                        \
      fprintf(stderr, "%s:%d: %s gave %s, want %s (last error: %s)\n",        \
              __FILE__, __LINE__, #expr, jobq_status_str(check_got_),          \
              jobq_status_str(check_want_), jobq_last_error());                \
    }                                                                          \
  } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, JOBQ_OK)

/* Builds "<dir>/<name>" into a static buffer (one at a time): a real file,
 * for the checks that are about files. */
static inline const char *check_file_path(const char *dir, const char *name) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s/%s", dir, name);
  return buf;
}

/* Whether the runner asked for the PostgreSQL pass: then check_path names
 * a schema "<JOBQ_TEST_PG_PREFIX>_<name>" in the database of
 * JOBQ_TEST_PG_BASE instead of a file (the runner drops those schemas). */
static inline int check_is_pg(void) {
  const char *base = getenv("JOBQ_TEST_PG_BASE");
  return base != NULL && base[0] != '\0';
}

/* The queue store called <name> of this test: "<dir>/<name>", or on the
 * PostgreSQL pass "<base>?schema=<prefix>_<name as an identifier>". One
 * static buffer (one at a time). */
static inline const char *check_path(const char *dir, const char *name) {
  static char buf[4096];
  if (!check_is_pg()) {
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
  }
  const char *base = getenv("JOBQ_TEST_PG_BASE");
  const char *prefix = getenv("JOBQ_TEST_PG_PREFIX");
  if (prefix == NULL) {
    prefix = "jobq_c";
  }
  /* PostgreSQL identifiers have at most 63 bytes. */
  size_t room = strlen(prefix) < 60 ? 62 - strlen(prefix) : 1;
  char ident[64];
  size_t n = 0;
  for (const char *p = name; *p != '\0' && n < room; p++) {
    char c = *p;
    ident[n++] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c
                 : (c >= 'A' && c <= 'Z')                          ? (char)(c - 'A' + 'a')
                                                                   : '_';
  }
  ident[n] = '\0';
  snprintf(buf, sizeof buf, "%s%cschema=%s_%s", base, strchr(base, '?') ? '&' : '?',
           prefix, ident);
  return buf;
}

static int check_finish(const char *test_name) {
  printf("%s: %d checks, %d failed\n", test_name, check_count, check_failures);
  return check_failures == 0 ? 0 : 1;
}

#endif
