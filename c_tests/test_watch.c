/* jobq_watch_*: a file descriptor that turns readable when a queue may have
 * a ready job (a put from this process or another one), stays readable until
 * consumed, and tells the loop when the next delayed job or lease expiry is
 * due; the close, fork and bad-handle rules.
 * argv[1] = a fresh directory (on the PostgreSQL pass, stores are schemas). */
#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <sched.h>
#include <sys/wait.h>

#include "testutil.h"

static const char *CFG;

/* Whether the watch's fd is readable within `ms` (0: right now). */
static int readable(jobq_watch *w, int ms) {
  struct pollfd p;
  p.fd = jobq_watch_fd(w);
  p.events = POLLIN;
  p.revents = 0;
  return poll(&p, 1, ms) == 1 && (p.revents & POLLIN) != 0;
}

static int64_t consume(jobq_watch *w) {
  int64_t due = -2;
  CHECK_OK(jobq_watch_consume(w, &due));
  return due;
}

/* Consumes until the fd stays quiet for a moment. Wakeups may be spurious:
 * one write can reach the watch twice (this process's commit, then SQLite's
 * data_version watcher seeing it), and opening a handle elsewhere writes.
 * Whether it settles is what shows that consume clears the readiness. */
static int settle(jobq_watch *w) {
  int tries;
  for (tries = 0; tries < 10; tries++) {
    (void)consume(w);
    if (!readable(w, (int)TU_SCALE(20))) {
      return 1;
    }
  }
  return 0;
}

static void test_readiness(const char *dir) {
  jobq *q = tu_open(dir, "ready.db", CFG);
  jobq_watch *w = NULL;
  jobq_job *job;
  int flags, n = 0;
  int64_t put_at;

  CHECK_OK(jobq_watch_open(q, "mail", &w));
  CHECK(w != NULL);
  CHECK(jobq_watch_fd(w) >= 0);
  flags = fcntl(jobq_watch_fd(w), F_GETFL);
  CHECK(flags != -1 && (flags & O_NONBLOCK) != 0);
  flags = fcntl(jobq_watch_fd(w), F_GETFD);
  CHECK(flags != -1 && (flags & FD_CLOEXEC) != 0);
  /* Readable at first (jobs may be waiting already), until consumed. */
  CHECK(readable(w, 0));
  CHECK(consume(w) == -1);
  CHECK(settle(w));
  CHECK(!readable(w, (int)TU_SCALE(30)));

  /* A put from this process. */
  put_at = tu_now_ms();
  tu_put(q, "mail", "one", NULL);
  CHECK(readable(w, (int)TU_MUST_MS));
  printf("put -> watch readable (same process): %lld ms\n", (long long)(tu_now_ms() - put_at));
  /* Stays readable, however often the loop looks, until consumed. */
  CHECK(readable(w, 0));
  CHECK(readable(w, 0));
  CHECK(consume(w) == -1);
  CHECK(settle(w));
  /* The loop: reserve with timeout 0 until JOBQ_TIMEOUT. */
  while (jobq_reserve(q, "mail", 0, &job) == JOBQ_OK) {
    CHECK(tu_payload_is(job, "one"));
    tu_ack_free(job);
    n++;
  }
  CHECK(n == 1);
  /* Consume with a NULL out pointer is allowed. */
  tu_put(q, "mail", "two", NULL);
  CHECK(readable(w, (int)TU_MUST_MS));
  CHECK_OK(jobq_watch_consume(w, NULL));
  job = tu_reserve(q, "mail", 0);
  if (job != NULL) {
    tu_ack_free(job);
  }
  CHECK_OK(jobq_watch_close(w));
  CHECK_OK(jobq_close(q));
}

/* consume reports when the next delayed job or lease expiry is due. */
static void test_next_due(const char *dir) {
  jobq *q = tu_open(dir, "due.db", CFG);
  jobq_watch *w = NULL;
  jobq_put_opts opts;
  jobq_job *job;
  int64_t due, delay = TU_SCALE(400), lease = TU_SCALE(300);

  CHECK_OK(jobq_watch_open(q, "later", &w));
  (void)consume(w);
  jobq_put_opts_init(&opts);
  opts.delay_ms = (uint64_t)delay;
  tu_put(q, "later", "delayed", &opts);
  CHECK(readable(w, (int)TU_MUST_MS)); /* spurious for a delayed put, allowed */
  due = consume(w);
  CHECK(due > 0 && due <= delay);
  /* Due: 0, and the job is there. */
  tu_sleep_ms((long)delay + 20);
  CHECK(consume(w) == 0);
  job = tu_reserve(q, "later", 0);
  CHECK(job != NULL);
  if (job != NULL) {
    tu_ack_free(job);
  }
  CHECK(consume(w) == -1);

  /* A lease expiry is due too: the job comes back then. */
  jobq_put_opts_init(&opts);
  opts.lease_ms = (uint64_t)lease;
  tu_put(q, "later", "leased", &opts);
  job = tu_reserve(q, "later", 0);
  CHECK(job != NULL);
  due = consume(w);
  CHECK(due > 0 && due <= lease);
  if (job != NULL) {
    tu_ack_free(job);
  }
  CHECK(consume(w) == -1);
  /* Another queue's jobs do not count. */
  jobq_put_opts_init(&opts);
  opts.delay_ms = (uint64_t)delay;
  tu_put(q, "other", "elsewhere", &opts);
  CHECK(consume(w) == -1);
  CHECK_OK(jobq_watch_close(w));
  CHECK_OK(jobq_close(q));
}

/* ---- other processes -------------------------------------------------- */

/* A child process puts when told to; the parent's watch turns readable.
 * The child also finds the parent's watch handle refused (fork rule). */
static void test_other_process(const char *dir) {
  char path[4096];
  jobq *q = tu_open(dir, "procs.db", CFG);
  jobq_watch *w = NULL;
  int to_child[2], to_parent[2];
  pid_t pid;
  unsigned char go = 'g', verdict = 0;
  int64_t put_at, woke = -1;

  snprintf(path, sizeof path, "%s", check_path(dir, "procs.db"));
  CHECK_OK(jobq_watch_open(q, "x", &w));
  (void)consume(w);
  CHECK(pipe(to_child) == 0 && pipe(to_parent) == 0);
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    jobq *own = NULL;
    unsigned char c = 0;
    int64_t at;
    tu_child_begin();
    close(to_child[1]);
    close(to_parent[0]);
    /* The parent's watch is not this process's. */
    CHECK(jobq_watch_fd(w) == -1);
    CHECK_STATUS(jobq_watch_consume(w, NULL), JOBQ_E_HANDLE);
    CHECK_OK(jobq_open(path, CFG, &own));
    if (read(to_child[0], &c, 1) != 1) {
      _exit(3);
    }
    if (own != NULL) {
      at = tu_now_ms();
      tu_put(own, "x", "from the child", NULL);
      if (write(to_parent[1], &at, sizeof at) != (ssize_t)sizeof at) {
        _exit(3);
      }
      CHECK_OK(jobq_close(own));
    }
    tu_child_report(to_parent[1]);
    _exit(0);
  }
  close(to_child[0]);
  close(to_parent[1]);
  /* Let the child open its handle; the parent waits in poll. */
  tu_sleep_ms(TU_SCALE(100));
  CHECK(settle(w));
  CHECK(write(to_child[1], &go, 1) == 1);
  CHECK(readable(w, (int)TU_MUST_MS));
  woke = tu_now_ms();
  CHECK(read(to_parent[0], &put_at, sizeof put_at) == (ssize_t)sizeof put_at);
  printf("put in another process -> watch readable: %lld ms\n", (long long)(woke - put_at));
  CHECK(read(to_parent[0], &verdict, 1) == 1);
  CHECK(verdict == TU_CHILD_PASSED);
  close(to_child[1]);
  close(to_parent[0]);
  if (pid > 0) {
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
  }
  CHECK(consume(w) == -1);
  {
    jobq_job *job = tu_reserve(q, "x", 0);
    CHECK(job != NULL);
    if (job != NULL) {
      CHECK(tu_payload_is(job, "from the child"));
      tu_ack_free(job);
    }
  }
  CHECK_OK(jobq_watch_close(w));
  CHECK_OK(jobq_close(q));
}

/* jobq_close is BUSY while a watch is open; bad handles and arguments. */
static void test_rules(const char *dir) {
  jobq *q = tu_open(dir, "rules.db", CFG);
  jobq_watch *w = NULL, *w2 = NULL;
  char long_name[1100];

  memset(long_name, 'n', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';

  CHECK_OK(jobq_watch_open(q, "a", &w));
  CHECK_OK(jobq_watch_open(q, "a", &w2)); /* two on one queue: fine */
  CHECK(jobq_watch_fd(w) != jobq_watch_fd(w2));
  CHECK_STATUS(jobq_close(q), JOBQ_E_BUSY);
  CHECK(strstr(jobq_last_error(), "watch") != NULL);
  CHECK_OK(jobq_watch_close(w2));
  CHECK_STATUS(jobq_close(q), JOBQ_E_BUSY);
  /* The handle still works after a refused close. */
  tu_put(q, "a", "still open", NULL);
  CHECK(readable(w, (int)TU_MUST_MS));
  CHECK_OK(jobq_watch_close(w));
  /* A closed watch is a bad handle. */
  CHECK_STATUS(jobq_watch_close(w), JOBQ_E_HANDLE);
  CHECK_STATUS(jobq_watch_consume(w, NULL), JOBQ_E_HANDLE);
  CHECK(jobq_watch_fd(w) == -1);
  /* The NULL no-op is a success: it clears the error the calls above left. */
  CHECK(jobq_last_error()[0] != '\0');
  CHECK_OK(jobq_watch_close(NULL));
  CHECK(jobq_last_error()[0] == '\0');
  CHECK(jobq_watch_fd(NULL) == -1);
  CHECK_STATUS(jobq_watch_consume(NULL, NULL), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_watch_open(NULL, "a", &w), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_watch_open(q, NULL, &w), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "queue") != NULL);
  CHECK_STATUS(jobq_watch_open(q, "", &w), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_watch_open(q, long_name, &w), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_watch_open(q, "a", NULL), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "out") != NULL);
  {
    jobq_job *job = tu_reserve(q, "a", 0);
    if (job != NULL) {
      tu_ack_free(job);
    }
  }
  CHECK_OK(jobq_close(q));
  /* A watch on a closed handle. */
  w = NULL;
  CHECK_STATUS(jobq_watch_open(q, "a", &w), JOBQ_E_HANDLE);
  CHECK(w == NULL);
}

/* "wakeups": "poll" (PostgreSQL behind PgBouncer): no LISTEN, so a put by
 * another handle reaches this one only by polling. A blocked reserve and a
 * watch still see it; a queue file refuses the key. */
static void *put_later(void *arg) {
  tu_sleep_ms(TU_SCALE(100));
  tu_put((jobq *)arg, "p", "while waiting", NULL);
  return NULL;
}

static void test_poll_wakeups(const char *dir) {
  const char *poll_cfg = "{\"durability\":\"normal\",\"wakeups\":\"poll\"}";
  jobq *a = NULL, *b;
  jobq_watch *w = NULL;
  jobq_job *job = NULL;
  char path[4096];
  int64_t put_at;

  snprintf(path, sizeof path, "%s", check_path(dir, "poll.db"));
  if (!check_is_pg()) {
    CHECK_STATUS(jobq_open(path, poll_cfg, &a), JOBQ_E_INVALID_ARG);
    CHECK(strstr(jobq_last_error(), "wakeups") != NULL);
    CHECK(a == NULL);
    return;
  }
  CHECK_OK(jobq_open(path, poll_cfg, &a));
  if (a == NULL) {
    return;
  }
  b = tu_open(dir, "poll.db", CFG);
  CHECK_OK(jobq_watch_open(a, "p", &w));
  /* In poll mode the fd turns readable every 20 ms by itself (documented),
   * so it never settles; what matters is that the put is found. */
  (void)consume(w);
  /* Other handles' puts: b's notifier is not a's, only polling finds them (the
   * reserves below are the real check; the fd is readable by itself too). */
  put_at = tu_now_ms();
  tu_put(b, "p", "polled", NULL);
  CHECK(readable(w, (int)TU_MUST_MS));
  printf("put by another handle -> poll-mode watch readable: %lld ms\n", (long long)(tu_now_ms() - put_at));
  CHECK_OK(jobq_reserve(a, "p", 0, &job));
  if (job != NULL) {
    CHECK(tu_payload_is(job, "polled"));
    tu_ack_free(job);
  }
  /* A reserve blocked in a sees b's put, made while it waits. */
  {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, put_later, b) == 0);
    job = NULL;
    CHECK_OK(jobq_reserve(a, "p", TU_MUST_MS, &job));
    if (job != NULL) {
      CHECK(tu_payload_is(job, "while waiting"));
      tu_ack_free(job);
    }
    pthread_join(t, NULL);
  }
  CHECK_OK(jobq_watch_close(w));
  CHECK_OK(jobq_close(b));
  CHECK_OK(jobq_close(a));
}

/* A producer thread puts jobs back to back while the loop waits on the fd,
 * consumes and drains: every job must arrive with no wait for a wakeup that
 * never comes. (A consume that cleared the readiness before reading the
 * socket could swallow the byte of a signal racing with it and leave the
 * watch deaf for good; this loop hit that within a few thousand rounds.) */
struct stream {
  jobq *q;
  int n;
};

static void *put_stream(void *arg) {
  struct stream *s = arg;
  int i;
  for (i = 0; i < s->n; i++) {
    tu_put(s->q, "stream", "s", NULL);
    if (i % 8 == 0) sched_yield();
  }
  return NULL;
}

static void test_no_lost_wakeup_under_a_stream(const char *dir) {
  jobq *q = tu_open(dir, "stream.db", CFG);
  jobq_watch *w = NULL;
  jobq_job *job;
  pthread_t t;
  struct stream s;
  int got = 0, stalls = 0;

  s.q = q;
  s.n = check_is_pg() ? 600 : 3000;
  if (tu_slow() > 1) s.n /= 10; /* under valgrind */
  CHECK_OK(jobq_watch_open(q, "stream", &w));
  CHECK(pthread_create(&t, NULL, put_stream, &s) == 0);
  while (got < s.n) {
    if (!readable(w, (int)TU_MUST_MS)) {
      stalls++; /* deaf: jobs were put and no wakeup came */
      break;
    }
    (void)consume(w);
    while (jobq_reserve(q, "stream", 0, &job) == JOBQ_OK) {
      tu_ack_free(job);
      got++;
    }
  }
  CHECK(pthread_join(t, NULL) == 0);
  while (jobq_reserve(q, "stream", 0, &job) == JOBQ_OK) {
    tu_ack_free(job);
    got++;
  }
  printf("stream: %d of %d jobs, %d waits for a wakeup that did not come\n", got, s.n, stalls);
  CHECK(got == s.n);
  CHECK(stalls == 0);
  CHECK_OK(jobq_watch_close(w));
  CHECK_OK(jobq_close(q));
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  tu_watchdog();
  CFG = tu_cfg("{\"durability\":\"normal\"}");
  test_readiness(dir);
  test_next_due(dir);
  test_other_process(dir);
  test_rules(dir);
  test_poll_wakeups(dir);
  test_no_lost_wakeup_under_a_stream(dir);
  return check_finish("test_watch");
}
