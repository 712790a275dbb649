/* producer: puts jobs into a jobq queue file.
 *
 *   producer FILE QUEUE [PAYLOAD...]     one job per PAYLOAD argument
 *   producer FILE QUEUE < lines.txt      one job per line of standard input
 *
 * Prints the id of each job; exits non-zero on the first error.
 * JOBQ_CONFIG, if set, is the config JSON given to jobq_open. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobq.h"

static int put_one(jobq *q, const char *queue, const char *payload, size_t len) {
  uint64_t id = 0;
  jobq_status st = jobq_put(q, queue, payload, len, NULL, &id);
  if (st != JOBQ_OK && st != JOBQ_DUPLICATE) {
    fprintf(stderr, "producer: put failed: %s: %s\n", jobq_status_str(st), jobq_last_error());
    return -1;
  }
  printf("put job %llu: %.*s\n", (unsigned long long)id, (int)len, payload);
  return 0;
}

int main(int argc, char **argv) {
  jobq *q = NULL;
  jobq_status st;
  int failed = 0;
  if (argc < 3) {
    fprintf(stderr, "usage: %s FILE QUEUE [PAYLOAD...]  (no PAYLOAD: one job per stdin line)\n", argv[0]);
    return 2;
  }
  /* JOBQ_CONFIG: the queue file's settings as JSON (NULL = defaults). A job
   * keeps the max_attempts and lease_ms in force when it was put. */
  st = jobq_open(argv[1], getenv("JOBQ_CONFIG"), &q);
  if (st != JOBQ_OK) {
    fprintf(stderr, "producer: cannot open %s: %s: %s\n", argv[1], jobq_status_str(st), jobq_last_error());
    return 1;
  }
  if (argc > 3) {
    int i;
    for (i = 3; i < argc && !failed; i++) {
      failed = put_one(q, argv[2], argv[i], strlen(argv[i])) != 0;
    }
  } else {
    char line[65536];
    while (!failed && fgets(line, sizeof line, stdin) != NULL) {
      size_t len = strcspn(line, "\n");
      failed = put_one(q, argv[2], line, len) != 0;
    }
  }
  jobq_close(q);
  return failed ? 1 : 0;
}
