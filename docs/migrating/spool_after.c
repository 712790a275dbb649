/* spool_after.c: the spool directory of docs/migrating.md, moved to jobq.
 *
 *   spool_after STORE put TEXT...        producer: one job per TEXT
 *   spool_after STORE work [IDLE_MS]     worker: until no job came for IDLE_MS
 *                                        (default: forever)
 *   spool_after STORE import SPOOLDIR    drain: every file left in SPOOLDIR/new
 *                                        and SPOOLDIR/cur becomes a job, then
 *                                        is unlinked (old workers stopped)
 *
 * STORE is a queue file or a postgresql:// URL. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobq.h"

#define QUEUE "spool"

/* The application's handler, unchanged but for its argument: it used to get
 * the path of the file in cur/, now it gets the bytes. 0 = done. */
static int process(const uint8_t *data, size_t len) {
  printf("processed %.*s\n", (int)len, (const char *)data);
  return 0;
}

/* Was spool_submit(): write tmp/NAME, fsync, rename to new/NAME. */
static int submit(jobq *q, const void *data, size_t len) {
  jobq_status st = jobq_put(q, QUEUE, data, len, NULL, NULL); /* on disk when it returns */
  if (st != JOBQ_OK) fprintf(stderr, "put: %s: %s\n", jobq_status_str(st), jobq_last_error());
  return st == JOBQ_OK ? 0 : -1;
}

/* Was the scan of new/: rename to cur/, process, unlink. */
static int work(jobq *q, int64_t idle_ms) {
  jobq_job *job;
  jobq_status st;
  while ((st = jobq_reserve(q, QUEUE, idle_ms, &job)) == JOBQ_OK) {
    size_t len;
    const uint8_t *data = jobq_job_payload(job, &len);
    if (process(data, len) == 0)
      st = jobq_ack(job);                    /* was unlink(cur/NAME) */
    else
      st = jobq_fail(job, "process failed"); /* retried after a backoff; dead after max_attempts */
    if (st != JOBQ_OK) fprintf(stderr, "finish: %s: %s\n", jobq_status_str(st), jobq_last_error());
    jobq_job_free(job);                      /* always, whatever happened */
  }
  if (st == JOBQ_TIMEOUT) return 0;
  fprintf(stderr, "reserve: %s: %s\n", jobq_status_str(st), jobq_last_error());
  return -1;
}

/* The whole file at `path` in a malloc'd buffer; -1 with errno set on failure. */
static int slurp(const char *path, char **out, size_t *out_len) {
  struct stat sb;
  ssize_t n = 0;
  char *buf = NULL;
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  if (fstat(fd, &sb) == 0 && (buf = malloc((size_t)sb.st_size + 1)) != NULL)
    n = read(fd, buf, (size_t)sb.st_size);
  close(fd);
  if (buf == NULL || n != (ssize_t)sb.st_size) {
    free(buf);
    return -1;
  }
  *out = buf;
  *out_len = (size_t)n;
  return 0;
}

/* The drain: each file of SPOOL/SUB becomes one job, then is unlinked. The
 * file name is the job's unique key: if a crash comes between the put and
 * the unlink, running this again gets JOBQ_DUPLICATE (as long as the first
 * job is not acked yet) and just unlinks. */
static int import_dir(jobq *q, const char *spool, const char *sub) {
  char dir[4096], path[4096 + 256];
  struct dirent *e;
  int failed = 0;
  DIR *d;
  snprintf(dir, sizeof dir, "%s/%s", spool, sub);
  if ((d = opendir(dir)) == NULL) return errno == ENOENT ? 0 : -1;
  while (!failed && (e = readdir(d)) != NULL) {
    jobq_put_opts opts;
    jobq_status st;
    char *data;
    size_t len;
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (slurp(path, &data, &len) != 0) {
      failed = errno != ENOENT; /* ENOENT: gone meanwhile */
      continue;
    }
    jobq_put_opts_init(&opts);
    opts.unique_key = e->d_name;
    st = jobq_put(q, QUEUE, data, len, &opts, NULL);
    free(data);
    if (st == JOBQ_OK || st == JOBQ_DUPLICATE) {
      unlink(path);
    } else {
      fprintf(stderr, "put %s: %s: %s\n", path, jobq_status_str(st), jobq_last_error());
      failed = 1;
    }
  }
  closedir(d);
  return failed ? -1 : 0;
}

int main(int argc, char **argv) {
  jobq *q;
  int i, rc = 0;
  if (argc < 3) {
    fprintf(stderr, "usage: %s STORE put TEXT... | work [IDLE_MS] | import SPOOLDIR\n", argv[0]);
    return 2;
  }
  if (jobq_open(argv[1], NULL, &q) != JOBQ_OK) {
    fprintf(stderr, "open %s: %s\n", argv[1], jobq_last_error());
    return 1;
  }
  if (strcmp(argv[2], "put") == 0) {
    for (i = 3; i < argc && rc == 0; i++) rc = submit(q, argv[i], strlen(argv[i]));
  } else if (strcmp(argv[2], "work") == 0) {
    rc = work(q, argc > 3 ? atoll(argv[3]) : -1);
  } else if (strcmp(argv[2], "import") == 0 && argc == 4) {
    rc = import_dir(q, argv[3], "cur") != 0 || import_dir(q, argv[3], "new") != 0 ? -1 : 0;
  } else {
    rc = -1;
    fprintf(stderr, "%s: unknown command %s\n", argv[0], argv[2]);
  }
  jobq_close(q);
  return rc == 0 ? 0 : 1;
}
