/* Sharing: many threads on one handle (each job delivered once), blocking
 * reserves woken by puts from other threads and processes, close waking a
 * blocked reserve, the fork rule, a dead process's job coming back without
 * waiting for its lease, and JOBQ_E_BUSY from another process's lock. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "testutil.h"

/* Set in main: processes wait on each other's locks up to busy_timeout_ms,
 * which scales with the environment's speed like every "must happen
 * within" bound (5 s natively, as the default). */
static const char *CFG;

/* ---- many threads, one handle ---------------------------------------- */

#define PRODUCERS 4
#define CONSUMERS 4
#define PER_PRODUCER 50
#define TOTAL (PRODUCERS * PER_PRODUCER)

struct shared {
  jobq *q;
  pthread_mutex_t mu;
  int seen[TOTAL];
  int consumed;
  int errors;
  int64_t deadline;
};

struct producer_arg {
  struct shared *s;
  int n;
};

static void *producer(void *p) {
  struct producer_arg *a = p;
  char text[32];
  int i;
  for (i = 0; i < PER_PRODUCER; i++) {
    snprintf(text, sizeof text, "%d", a->n * PER_PRODUCER + i);
    if (jobq_put(a->s->q, "mt", text, strlen(text), NULL, NULL) != JOBQ_OK) {
      pthread_mutex_lock(&a->s->mu);
      a->s->errors++;
      pthread_mutex_unlock(&a->s->mu);
    }
  }
  return NULL;
}

static int payload_int(const jobq_job *job) {
  size_t len = 0;
  const uint8_t *data = jobq_job_payload(job, &len);
  char buf[32];
  if (data == NULL || len == 0 || len >= sizeof buf) {
    return -1;
  }
  memcpy(buf, data, len);
  buf[len] = '\0';
  return atoi(buf);
}

static void *consumer(void *p) {
  struct shared *s = p;
  for (;;) {
    jobq_job *job = NULL;
    jobq_status st;
    int done;
    pthread_mutex_lock(&s->mu);
    done = s->consumed >= TOTAL || tu_now_ms() > s->deadline;
    pthread_mutex_unlock(&s->mu);
    if (done) {
      break;
    }
    st = jobq_reserve(s->q, "mt", 100, &job);
    if (st == JOBQ_TIMEOUT) {
      continue;
    }
    pthread_mutex_lock(&s->mu);
    if (st != JOBQ_OK) {
      s->errors++;
    } else {
      int n = payload_int(job);
      if (n >= 0 && n < TOTAL) {
        s->seen[n]++;
      } else {
        s->errors++;
      }
      s->consumed++;
    }
    pthread_mutex_unlock(&s->mu);
    if (st == JOBQ_OK && jobq_ack(job) != JOBQ_OK) {
      pthread_mutex_lock(&s->mu);
      s->errors++;
      pthread_mutex_unlock(&s->mu);
    }
    jobq_job_free(job);
    if (st != JOBQ_OK) {
      break;
    }
  }
  return NULL;
}

static void test_many_threads(const char *dir) {
  static struct shared s;
  pthread_t prod[PRODUCERS], cons[CONSUMERS];
  struct producer_arg args[PRODUCERS];
  int i, exactly_once = 1;
  memset(&s, 0, sizeof s);
  s.q = tu_open(dir, "mt.db", CFG);
  pthread_mutex_init(&s.mu, NULL);
  s.deadline = tu_now_ms() + 4 * TU_MUST_MS;
  for (i = 0; i < CONSUMERS; i++) {
    CHECK(pthread_create(&cons[i], NULL, consumer, &s) == 0);
  }
  for (i = 0; i < PRODUCERS; i++) {
    args[i].s = &s;
    args[i].n = i;
    CHECK(pthread_create(&prod[i], NULL, producer, &args[i]) == 0);
  }
  for (i = 0; i < PRODUCERS; i++) {
    pthread_join(prod[i], NULL);
  }
  for (i = 0; i < CONSUMERS; i++) {
    pthread_join(cons[i], NULL);
  }
  CHECK(s.errors == 0);
  CHECK(s.consumed == TOTAL);
  for (i = 0; i < TOTAL; i++) {
    if (s.seen[i] != 1) {
      exactly_once = 0;
      fprintf(stderr, "  job %d delivered %d times\n", i, s.seen[i]);
    }
  }
  CHECK(exactly_once);
  TU_CHECK_COUNTS(s.q, "mt", 0, 0, 0, 0);
  CHECK_OK(jobq_close(s.q));
  pthread_mutex_destroy(&s.mu);
}

/* ---- blocking reserves woken by another thread ----------------------- */

struct delayed_put {
  jobq *q;
  const char *queue;
  int count;
  long after_ms;
};

static void *put_later(void *p) {
  struct delayed_put *d = p;
  int i;
  tu_sleep_ms(d->after_ms);
  for (i = 0; i < d->count; i++) {
    jobq_put(d->q, d->queue, "late", 4, NULL, NULL);
  }
  return NULL;
}

struct waiter {
  jobq *q;
  jobq_status st;
  uint64_t id;
};

static void *wait_for_job(void *p) {
  struct waiter *w = p;
  jobq_job *job = NULL;
  w->st = jobq_reserve(w->q, "many", 2 * TU_MUST_MS, &job);
  if (w->st == JOBQ_OK) {
    w->id = jobq_job_id(job);
    if (jobq_ack(job) != JOBQ_OK) {
      w->st = JOBQ_E_INTERNAL;
    }
  }
  jobq_job_free(job);
  return NULL;
}

static void test_wakeups(const char *dir) {
  jobq *q = tu_open(dir, "wake.db", CFG);
  pthread_t t;
  struct delayed_put d;
  jobq_job *job = NULL;
  int64_t t0;
  int i;

  /* Forever means forever, until a put arrives. */
  d.q = q;
  d.queue = "forever";
  d.count = 1;
  d.after_ms = 50;
  CHECK(pthread_create(&t, NULL, put_later, &d) == 0);
  t0 = tu_now_ms();
  CHECK_OK(jobq_reserve(q, "forever", -1, &job));
  CHECK(tu_now_ms() - t0 >= 40);
  CHECK(job != NULL && tu_payload_is(job, "late"));
  tu_ack_free(job);
  pthread_join(t, NULL);

  /* A finite wait is woken too, long before its timeout. */
  d.queue = "finite";
  CHECK(pthread_create(&t, NULL, put_later, &d) == 0);
  t0 = tu_now_ms();
  job = tu_reserve(q, "finite", 4 * TU_MUST_MS);
  CHECK(tu_now_ms() - t0 < 2 * TU_MUST_MS);
  tu_ack_free(job);
  pthread_join(t, NULL);

  /* Several waiters, several puts: each waiter gets its own job. */
  {
    struct waiter w[3];
    pthread_t wt[3];
    for (i = 0; i < 3; i++) {
      w[i].q = q;
      w[i].st = JOBQ_E_INTERNAL;
      w[i].id = 0;
      CHECK(pthread_create(&wt[i], NULL, wait_for_job, &w[i]) == 0);
    }
    tu_sleep_ms(50);
    for (i = 0; i < 3; i++) {
      tu_put(q, "many", "x", NULL);
    }
    for (i = 0; i < 3; i++) {
      pthread_join(wt[i], NULL);
      CHECK_OK(w[i].st);
    }
    CHECK(w[0].id != w[1].id && w[1].id != w[2].id && w[0].id != w[2].id);
  }
  CHECK_OK(jobq_close(q));
}

/* Closing the queue releases a thread blocked in jobq_reserve. */
struct blocked {
  jobq *q;
  jobq_status st;
  int returned;
};

static void *block_forever(void *p) {
  struct blocked *b = p;
  jobq_job *job = NULL;
  b->st = jobq_reserve(b->q, "never", -1, &job);
  if (b->st == JOBQ_OK) {
    jobq_job_free(job);
  }
  return NULL;
}

static void test_close_wakes_reserve(const char *dir) {
  struct blocked b;
  pthread_t t;
  b.q = tu_open(dir, "closewake.db", CFG);
  b.st = JOBQ_E_INTERNAL;
  CHECK(pthread_create(&t, NULL, block_forever, &b) == 0);
  tu_sleep_ms(50);
  CHECK_OK(jobq_close(b.q));
  pthread_join(t, NULL);
  CHECK_STATUS(b.st, JOBQ_E_SHUTDOWN);
}

/* A jobq_job may move between threads: reserved in one, finished in
 * another. */
static void *ack_elsewhere(void *p) {
  jobq_job *job = p;
  jobq_status st = jobq_ack(job);
  jobq_job_free(job);
  return st == JOBQ_OK ? p : NULL;
}

static void test_job_moves_threads(const char *dir) {
  jobq *q = tu_open(dir, "move.db", CFG);
  jobq_job *job;
  pthread_t t;
  void *res = NULL;
  tu_put(q, "mv", "x", NULL);
  job = tu_reserve(q, "mv", 0);
  if (job != NULL) {
    CHECK(pthread_create(&t, NULL, ack_elsewhere, job) == 0);
    pthread_join(t, &res);
    CHECK(res == job);
  }
  TU_CHECK_COUNTS(q, "mv", 0, 0, 0, 0);
  CHECK_OK(jobq_close(q));
}

/* ---- other processes -------------------------------------------------- */

static void reap(pid_t pid) {
  int status = 0;
  if (pid > 0) {
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
  }
}

static void test_fork(const char *dir) {
  char path[4096];
  jobq *q = tu_open(dir, "fork.db", CFG);
  jobq_job *held, *job;
  uint64_t held_id;
  pid_t pid;
  int fds[2];
  unsigned char verdict = 0;

  snprintf(path, sizeof path, "%s", check_path(dir, "fork.db"));
  /* The parent has really used the library (threads, locks, handles). */
  held_id = tu_put(q, "held", "parent's", NULL);
  held = tu_reserve(q, "held", 0);

  CHECK(pipe(fds) == 0);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    jobq *own = NULL;
    char *json = NULL;
    uint64_t id = 0;
    tu_child_begin();
    close(fds[0]);
    /* Inherited handles belong to the parent. */
    CHECK_STATUS(jobq_put(q, "x", "no", 2, NULL, &id), JOBQ_E_HANDLE);
    CHECK_STATUS(jobq_stats_json(q, &json), JOBQ_E_HANDLE);
    if (held != NULL) {
      CHECK_STATUS(jobq_ack(held), JOBQ_E_HANDLE);
      CHECK_STATUS(jobq_release(held, 0), JOBQ_E_HANDLE);
      jobq_job_free(held);
    }
    CHECK_STATUS(jobq_close(q), JOBQ_E_HANDLE);
    tu_sleep_ms(50); /* let the parent block in jobq_reserve first */
    CHECK_OK(jobq_open(path, CFG, &own));
    if (own != NULL) {
      CHECK_OK(jobq_put(own, "x", "from-child", 10, NULL, &id));
      CHECK_OK(jobq_close(own));
    }
    tu_child_report(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  /* Must be prompt in practice; only its arrival within 5 s is asserted. */
  job = tu_reserve(q, "x", TU_MUST_MS);
  if (job != NULL) {
    CHECK(tu_payload_is(job, "from-child"));
    tu_ack_free(job);
  }
  CHECK(read(fds[0], &verdict, 1) == 1);
  close(fds[0]);
  CHECK(verdict == TU_CHILD_PASSED);
  reap(pid);
  /* Nothing the child did touched the parent's delivery. */
  if (held != NULL) {
    CHECK(jobq_job_id(held) == held_id);
    CHECK_OK(jobq_ack(held));
    jobq_job_free(held);
  }
  CHECK_OK(jobq_close(q));
}

/* A process that dies holding a job: the job comes back (as a failed
 * attempt) without waiting out its lease. The lease is an hour, far longer
 * than the (scaled) bound on the wait, so the check means the same under
 * valgrind as natively. */
static void test_dead_process(const char *dir) {
  char path[4096];
  jobq *q = tu_open(dir, "orphan.db", CFG);
  jobq_put_opts opts;
  uint64_t id;
  int fds[2];
  pid_t pid;
  char c = 0;
  jobq_job *job;
  int64_t t0;

  jobq_put_opts_init(&opts);
  opts.lease_ms = 3600000;
  id = tu_put(q, "px", "orphan", &opts);
  snprintf(path, sizeof path, "%s", check_path(dir, "orphan.db"));
  CHECK(pipe(fds) == 0);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    jobq *own = NULL;
    jobq_job *mine = NULL;
    char r = 'f';
    close(fds[0]);
    if (jobq_open(path, CFG, &own) == JOBQ_OK &&
        jobq_reserve(own, "px", TU_MUST_MS, &mine) == JOBQ_OK) {
      r = 'r';
    }
    if (write(fds[1], &r, 1) != 1) {
      _exit(3);
    }
    /* Dies without finishing, freeing or closing anything. */
    _exit(0);
  }
  close(fds[1]);
  CHECK(read(fds[0], &c, 1) == 1);
  close(fds[0]);
  CHECK(c == 'r');
  reap(pid);
  t0 = tu_now_ms();
  job = tu_reserve(q, "px", TU_MUST_MS);
  if (job != NULL) {
    CHECK(jobq_job_id(job) == id);
    CHECK(jobq_job_attempt(job) == 2);
    CHECK(tu_now_ms() - t0 < TU_MUST_MS);
    tu_ack_free(job);
  }
  CHECK_OK(jobq_close(q));
}

/* "When jobq_put returns JOBQ_OK the job is stored": a process killed
 * right after its put, without closing anything, loses nothing. */
static void test_put_survives_kill(const char *dir) {
  char path[4096];
  pid_t pid;
  int status = 0;
  jobq *q;
  jobq_job *job;
  int i;

  snprintf(path, sizeof path, "%s", check_path(dir, "killed.db"));
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    jobq *own = NULL;
    if (jobq_open(path, NULL, &own) != JOBQ_OK) {
      _exit(3);
    }
    for (i = 0; i < 3; i++) {
      if (jobq_put(own, "k", "kept", 4, NULL, NULL) != JOBQ_OK) {
        _exit(4);
      }
    }
    kill(getpid(), SIGKILL);
    _exit(5);
  }
  if (pid > 0) {
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  }
  q = tu_open(dir, "killed.db", NULL);
  for (i = 0; i < 3; i++) {
    job = tu_reserve(q, "k", 0);
    if (job == NULL) {
      break;
    }
    CHECK(tu_payload_is(job, "kept"));
    tu_ack_free(job);
  }
  CHECK_OK(jobq_close(q));
}

/* Two processes draining one queue: every job is acked by exactly one. */
static void test_two_processes_consume(const char *dir) {
  enum { N = 40 };
  char path[4096];
  int seen[N];
  int fds[2];
  pid_t pid;
  int i, exactly_once = 1;
  unsigned char b, verdict = 0;
  jobq *q = tu_open(dir, "twoproc.db", CFG);
  char text[16];

  memset(seen, 0, sizeof seen);
  snprintf(path, sizeof path, "%s", check_path(dir, "twoproc.db"));
  for (i = 0; i < N; i++) {
    snprintf(text, sizeof text, "%d", i);
    tu_put(q, "both", text, NULL);
  }
  CHECK(pipe(fds) == 0);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    jobq *own = NULL;
    jobq_job *job = NULL;
    tu_child_begin();
    close(fds[0]);
    CHECK_OK(jobq_open(path, CFG, &own));
    while (own != NULL && jobq_reserve(own, "both", 300, &job) == JOBQ_OK) {
      unsigned char n = (unsigned char)payload_int(job);
      CHECK_OK(jobq_ack(job));
      jobq_job_free(job);
      CHECK(write(fds[1], &n, 1) == 1);
    }
    if (own != NULL) {
      CHECK_OK(jobq_close(own));
    }
    tu_child_report(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  for (;;) {
    jobq_job *job = NULL;
    int n;
    if (jobq_reserve(q, "both", 300, &job) != JOBQ_OK) {
      break;
    }
    n = payload_int(job);
    if (n >= 0 && n < N) {
      seen[n]++;
    }
    tu_ack_free(job);
  }
  while (read(fds[0], &b, 1) == 1) {
    if (b < N) {
      seen[b]++;
    } else {
      verdict = b;
    }
  }
  close(fds[0]);
  CHECK(verdict == TU_CHILD_PASSED);
  reap(pid);
  for (i = 0; i < N; i++) {
    if (seen[i] != 1) {
      exactly_once = 0;
      fprintf(stderr, "  job %d acked %d times\n", i, seen[i]);
    }
  }
  CHECK(exactly_once);
  CHECK_OK(jobq_close(q));
}

/* Another process holds the write lock: after busy_timeout_ms the call
 * gives JOBQ_E_BUSY, and works again once the lock is gone. The child
 * takes the locks SQLite writers need with fcntl: the WAL write lock (byte
 * 120 of the -shm file) and, for a rollback journal, the RESERVED byte of
 * the database file. */
static int lock_byte(int fd, off_t at) {
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = at;
  fl.l_len = 1;
  return fcntl(fd, F_SETLK, &fl);
}

static void test_busy(const char *dir) {
  char db[4096], shm[4096];
  if (check_is_pg()) {
    /* It takes SQLite's file locks by hand. */
    printf("test_busy: file-only (SQLite's locks), skipped on the PostgreSQL pass\n");
    return;
  }
  jobq *q = tu_open(dir, "busy.db",
                    "{\"durability\":\"normal\",\"busy_timeout_ms\":100}");
  int to_child[2], to_parent[2];
  char c = 0;
  pid_t pid;
  uint64_t id = 0x5e5e;
  jobq_status st;
  int64_t t0;

  snprintf(db, sizeof db, "%s", check_path(dir, "busy.db"));
  snprintf(shm, sizeof shm, "%s", check_path(dir, "busy.db-shm"));
  tu_put(q, "b", "before", NULL);
  CHECK(pipe(to_child) == 0 && pipe(to_parent) == 0);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    int dbfd = open(db, O_RDWR);
    int shmfd = open(shm, O_RDWR);
    int64_t deadline = tu_now_ms() + TU_MUST_MS;
    int locked = 0;
    char r;
    close(to_child[1]);
    close(to_parent[0]);
    while (!locked && tu_now_ms() < deadline) {
      locked = (shmfd < 0 || lock_byte(shmfd, 120) == 0) &&
               (dbfd < 0 || lock_byte(dbfd, 0x40000001) == 0);
      if (!locked) {
        tu_sleep_ms(5);
      }
    }
    r = locked ? 'L' : 'F';
    if (write(to_parent[1], &r, 1) != 1) {
      _exit(3);
    }
    /* Hold the locks until the parent is done (or gone). */
    if (read(to_child[0], &r, 1) < 0) {
      r = 0;
    }
    _exit(0);
  }
  close(to_child[0]);
  close(to_parent[1]);
  CHECK(read(to_parent[0], &c, 1) == 1);
  CHECK(c == 'L');

  t0 = tu_now_ms();
  st = jobq_put(q, "b", "blocked", 7, NULL, &id);
  CHECK_STATUS(st, JOBQ_E_BUSY);
  CHECK(id == 0x5e5e);
  if (st == JOBQ_E_BUSY) {
    CHECK(jobq_last_error()[0] != '\0');
    /* It waited for the lock before giving up. */
    CHECK(tu_now_ms() - t0 >= 80);
  }

  c = 'x';
  CHECK(write(to_child[1], &c, 1) == 1);
  close(to_child[1]);
  close(to_parent[0]);
  reap(pid);
  /* The lock is gone: writes work again, and the refused put stored nothing. */
  tu_put(q, "b", "after", NULL);
  CHECK(tu_stat(q, "b", "ready") == (st == JOBQ_OK ? 3 : 2));
  CHECK_OK(jobq_close(q));
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  tu_watchdog();
  CFG = tu_cfg("{\"durability\":\"normal\",\"busy_timeout_ms\":%lld}",
               (long long)TU_SCALE(5000));
  test_many_threads(dir);
  test_wakeups(dir);
  test_close_wakes_reserve(dir);
  test_job_moves_threads(dir);
  test_fork(dir);
  test_dead_process(dir);
  test_put_survives_kill(dir);
  test_two_processes_consume(dir);
  test_busy(dir);
  return check_finish("test_threads_procs");
}
