/* Pre-fork servers fork while other threads of the parent are busy in
 * jobq. A child forked while a parent thread was inside an SQLite
 * transaction must still be able to open the file and write: the library's
 * fork handlers make fork() wait until no jobq thread is inside SQLite.
 * Without them, a child could inherit a lock nobody releases and get
 * JOBQ_E_BUSY (or hang) on its first write. */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static jobq *shared_q;
static volatile int stop_hammer;

/* Keeps a transaction running in the parent at almost every moment. */
static void *hammer(void *arg) {
  uint64_t id;
  (void)arg;
  while (!stop_hammer) {
    jobq_job *job = NULL;
    if (jobq_put(shared_q, "busy", "x", 1, NULL, &id) != JOBQ_OK) {
      break;
    }
    if (jobq_reserve(shared_q, "busy", 0, &job) == JOBQ_OK) {
      jobq_ack(job);
      jobq_job_free(job);
    }
  }
  return NULL;
}

/* The child's verdict: 0 = put and reserve worked. Reported through a pipe,
 * not the exit status: under valgrind a forked child's exit status reports
 * the parent's inherited (deliberately unfreed) handles as leaks. */
static int child_run(const char *path) {
  jobq *q = NULL;
  jobq_job *job = NULL;
  uint64_t id = 0;
  char cfg[128];
  int ok;
  jobq_status st;
  /* A short busy timeout: an inherited, never-released lock fails fast. */
  snprintf(cfg, sizeof cfg, "{\"busy_timeout_ms\": %lld}", (long long)TU_SCALE(2000));
  st = jobq_open(path, cfg, &q);
  if (st != JOBQ_OK) {
    fprintf(stderr, "child: open: %s: %s\n", jobq_status_str(st), jobq_last_error());
    return 2;
  }
  st = jobq_put(q, "child", "from the child", 14, NULL, &id);
  ok = st == JOBQ_OK;
  if (!ok) {
    fprintf(stderr, "child: put: %s: %s\n", jobq_status_str(st), jobq_last_error());
  }
  ok = ok && jobq_reserve(q, "child", 0, &job) == JOBQ_OK && jobq_job_id(job) == id && jobq_ack(job) == JOBQ_OK;
  jobq_job_free(job);
  jobq_close(q);
  return ok ? 0 : 3;
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  char path[4096];
  pthread_t t;
  int i, rounds = tu_slow() > 1 ? 3 : 20;
#if defined(__SANITIZE_ADDRESS__)
  /* ASan's own allocator (GCC 12's libsanitizer) is not fork-safe while
   * other threads allocate: a child can inherit its internal lock held and
   * hang in malloc, before any jobq code runs. This test is about jobq's
   * locks, so under ASan it runs without the concurrent fork rounds; it
   * runs in full natively and under valgrind. */
  rounds = 0;
  printf("test_fork_busy: fork rounds skipped under AddressSanitizer (its allocator is not fork-safe)\n");
#endif
  tu_watchdog();
  snprintf(path, sizeof path, "%s", check_path(dir, "fork.db"));
  CHECK_OK(jobq_open(path, "{\"durability\": \"normal\"}", &shared_q));
  CHECK(pthread_create(&t, NULL, hammer, NULL) == 0);
  for (i = 0; i < rounds; i++) {
    int status = 0;
    int fds[2];
    unsigned char verdict = 255;
    pid_t pid;
    tu_sleep_ms(5);
    CHECK(pipe(fds) == 0);
    pid = fork();
    if (pid == 0) {
      unsigned char v;
      /* A hung child must not outlive the test (and hold its output open). */
      alarm((unsigned)(20 * tu_slow()));
      v = (unsigned char)child_run(path);
      close(fds[0]);
      if (write(fds[1], &v, 1) != 1) {
        _exit(9);
      }
      _exit(0);
    }
    CHECK(pid > 0);
    close(fds[1]);
    if (pid > 0) {
      CHECK(read(fds[0], &verdict, 1) == 1);
      CHECK(verdict == 0);
      CHECK(waitpid(pid, &status, 0) == pid);
    }
    close(fds[0]);
  }
  stop_hammer = 1;
  pthread_join(t, NULL);
  CHECK_OK(jobq_close(shared_q));
  return check_finish("test_fork_busy");
}
