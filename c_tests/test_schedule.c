/* jobq_schedule / jobq_unschedule: a stored schedule puts one job per slot
 * into its queue, whichever handles and processes have the store open (each
 * slot exactly once); replacing a name replaces the schedule; unschedule
 * stops it; after a downtime of many slots, ONE catch-up job; bad specs and
 * arguments are refused and store nothing; stats list the schedules.
 * argv[1] = a fresh directory (on the PostgreSQL pass, stores are schemas). */
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"

static const char *CFG;
/* The slot interval of the tests (scaled: 2 s under valgrind). */
static int64_t EVERY;
static char EVERY_SPEC[64];

/* Wall-clock ms (the library's slots are wall-clock times). */
static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Every job of `queue` in the store now, whatever its state. */
static long jobs_in(jobq *q, const char *queue) {
  tu_counts c = tu_counts_of(q, queue);
  return c.ready + c.scheduled + c.reserved + c.dead;
}

/* Reserves and acks every job of `queue` that is ready now; how many. */
static long drain(jobq *q, const char *queue, const char *payload) {
  long n = 0;
  jobq_job *job = NULL;
  while (jobq_reserve(q, queue, 0, &job) == JOBQ_OK && job != NULL) {
    if (payload != NULL) {
      CHECK(tu_payload_is(job, payload));
    }
    tu_ack_free(job);
    job = NULL;
    n++;
  }
  return n;
}

/* Whether the stats JSON has a "schedules" list naming `name`. */
static int stats_list_schedule(jobq *q, const char *name) {
  char *json = NULL;
  char quoted[128];
  const char *list;
  int found = 0;
  if (jobq_stats_json(q, &json) != JOBQ_OK || json == NULL) {
    return -1;
  }
  snprintf(quoted, sizeof quoted, "\"name\":\"%s\"", name);
  list = strstr(json, "\"schedules\":[");
  found = list != NULL && strstr(list, quoted) != NULL;
  jobq_string_free(json);
  return found;
}

static void test_every_fires_once_per_slot(const char *dir) {
  jobq *q = tu_open(dir, "every.db", CFG);
  jobq_job *job;
  int64_t start, elapsed;
  long n;
  jobq_put_opts opts;

  jobq_put_opts_init(&opts);
  opts.priority = 7;
  start = wall_ms();
  CHECK_OK(jobq_schedule(q, "tick", "ticker", EVERY_SPEC, "tock", 4, &opts));
  CHECK(stats_list_schedule(q, "ticker") == 1);
  /* The first slot is one interval after the schedule; a blocked reserve is woken by it. */
  job = tu_reserve(q, "tick", TU_MUST_MS);
  if (job != NULL) {
    CHECK(tu_payload_is(job, "tock"));
    CHECK(wall_ms() - start >= EVERY - 5);
    tu_ack_free(job);
  }
  /* Over a few slots: at most one job per slot that came, and more than one
   * in all. (Not one per slot: on a loaded machine the firing thread may run
   * a slot late, and a late slot is put once, not caught up.) */
  tu_sleep_ms((long)(4 * EVERY + EVERY / 2));
  n = jobs_in(q, "tick");
  elapsed = wall_ms() - start;
  printf("every: %ld more jobs in %lld ms of %lld ms slots\n", n, (long long)elapsed, (long long)EVERY);
  CHECK(n >= 1);
  CHECK(n + 1 <= elapsed / EVERY); /* n + the one reserved above */
  /* Another slot may have come since the count. */
  CHECK(drain(q, "tick", "tock") >= n);
  CHECK_OK(jobq_close(q));
}

/* Two handles in this process and one in a child process have the store
 * open: still one job per slot. */
static void test_many_handles_one_job_per_slot(const char *dir) {
  const char *path;
  char path_copy[4096];
  jobq *a = tu_open(dir, "many.db", CFG);
  jobq *b = tu_open(dir, "many.db", CFG);
  int to_parent[2];
  pid_t pid;
  unsigned char verdict = 0;
  int64_t start, elapsed;
  long n;

  path = check_path(dir, "many.db");
  snprintf(path_copy, sizeof path_copy, "%s", path);
  CHECK(pipe(to_parent) == 0);
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    jobq *own = NULL;
    tu_child_begin();
    close(to_parent[0]);
    CHECK_OK(jobq_open(path_copy, CFG, &own));
    /* Keeps the store open (its scheduler runs) for the whole window. */
    tu_sleep_ms((long)(8 * EVERY));
    if (own != NULL) {
      CHECK_OK(jobq_close(own));
    }
    tu_child_report(to_parent[1]);
    _exit(0);
  }
  close(to_parent[1]);
  start = wall_ms();
  CHECK_OK(jobq_schedule(a, "multi", "m", EVERY_SPEC, "x", 1, NULL));
  tu_sleep_ms((long)(6 * EVERY + EVERY / 2));
  n = jobs_in(b, "multi");
  elapsed = wall_ms() - start;
  printf("three handles: %ld jobs in %lld ms of %lld ms slots\n", n, (long long)elapsed, (long long)EVERY);
  CHECK(n >= 3);
  CHECK(n <= elapsed / EVERY);
  CHECK(read(to_parent[0], &verdict, 1) == 1);
  CHECK(verdict == TU_CHILD_PASSED);
  close(to_parent[0]);
  if (pid > 0) {
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
  }
  n = jobs_in(a, "multi");
  elapsed = wall_ms() - start;
  CHECK(n <= elapsed / EVERY);
  CHECK_OK(jobq_unschedule(b, "m"));
  CHECK_OK(jobq_close(a));
  CHECK_OK(jobq_close(b));
}

static void test_unschedule_and_replace(const char *dir) {
  jobq *q = tu_open(dir, "replace.db", CFG);
  jobq_job *job;
  long before;

  CHECK_OK(jobq_schedule(q, "x", "r", EVERY_SPEC, "old", 3, NULL));
  job = tu_reserve(q, "x", TU_MUST_MS);
  if (job != NULL) {
    CHECK(tu_payload_is(job, "old"));
    tu_ack_free(job);
  }
  /* Replace: another queue, another payload; "x" gets nothing more. */
  CHECK_OK(jobq_schedule(q, "y", "r", EVERY_SPEC, "new", 3, NULL));
  before = jobs_in(q, "x");
  job = tu_reserve(q, "y", TU_MUST_MS);
  if (job != NULL) {
    CHECK(tu_payload_is(job, "new"));
    tu_ack_free(job);
  }
  tu_sleep_ms((long)(2 * EVERY));
  CHECK(jobs_in(q, "x") == before);
  /* Unschedule: nothing more comes. */
  CHECK_OK(jobq_unschedule(q, "r"));
  CHECK(stats_list_schedule(q, "r") == 0);
  drain(q, "y", "new");
  tu_expect_nothing(q, "y", 3 * EVERY);
  /* Unscheduling a name without a schedule is a no-op. */
  CHECK_OK(jobq_unschedule(q, "r"));
  CHECK_OK(jobq_unschedule(q, "never"));
  CHECK_OK(jobq_close(q));
}

/* Cron specs and shorthands are stored and listed (their slots are minutes
 * or more away: the parser's own tests cover when they fall). */
static void test_cron_specs(const char *dir) {
  jobq *q = tu_open(dir, "cron.db", CFG);
  CHECK_OK(jobq_schedule(q, "c", "nightly", "30 2 * * MON-FRI", NULL, 0, NULL));
  CHECK_OK(jobq_schedule(q, "c", "hourly", "@hourly", "h", 1, NULL));
  CHECK_OK(jobq_schedule(q, "c", "odd", "*/15 0-23/2 1,15 JAN-jun 0-7", NULL, 0, NULL));
  CHECK(stats_list_schedule(q, "nightly") == 1);
  CHECK(stats_list_schedule(q, "hourly") == 1);
  CHECK(stats_list_schedule(q, "odd") == 1);
  /* The queue is recorded by the schedule. */
  TU_CHECK_COUNTS(q, "c", 0, 0, 0, 0);
  CHECK_OK(jobq_close(q));
}

/* Closed longer than many slots: one job when a handle opens again, not one
 * per missed slot. */
static void test_catch_up_is_one_job(const char *dir) {
  jobq *q = tu_open(dir, "catchup.db", CFG);
  jobq_job *job;
  int64_t t0, t1, reopen, elapsed;
  long n, allowed, allowed1;

  t0 = wall_ms();
  CHECK_OK(jobq_schedule(q, "cu", "c", EVERY_SPEC, "late", 4, NULL));
  t1 = wall_ms();
  CHECK_OK(jobq_close(q));
  /* Down for 5.5 slots: reopen half-way between two slots. */
  tu_sleep_ms((long)(5 * EVERY + EVERY / 2));
  reopen = wall_ms();
  q = tu_open(dir, "catchup.db", CFG);
  job = tu_reserve(q, "cu", TU_MUST_MS);
  if (job != NULL) {
    CHECK(tu_payload_is(job, "late"));
    tu_ack_free(job);
  }
  n = jobs_in(q, "cu");
  elapsed = wall_ms();
  /* Grid slots (t0 + k * EVERY) that came after the reopen may each add one. */
  allowed = (elapsed - t0) / EVERY - (reopen - t0) / EVERY;
  allowed1 = (elapsed - t1) / EVERY - (reopen - t1) / EVERY;
  allowed = allowed > allowed1 ? allowed : allowed1;
  printf("catch-up: 1 job at reopen, then %ld (%ld slots since)\n", n, allowed);
  CHECK(n <= allowed);
  CHECK_OK(jobq_unschedule(q, "c"));
  CHECK_OK(jobq_close(q));
}

static void test_bad_input(const char *dir) {
  jobq *q = tu_open(dir, "bad.db", CFG);
  char long_name[1100];
  jobq_put_opts opts;

  CHECK_STATUS(jobq_schedule(NULL, "q", "n", "@hourly", NULL, 0, NULL), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_schedule(q, NULL, "n", "@hourly", NULL, 0, NULL), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_schedule(q, "q", NULL, "@hourly", NULL, 0, NULL), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_schedule(q, "q", "n", NULL, NULL, 0, NULL), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_schedule(q, "q", "n", "@hourly", NULL, 3, NULL), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_schedule(q, "", "n", "@hourly", NULL, 0, NULL), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_schedule(q, "q", "", "@hourly", NULL, 0, NULL), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "schedule name") != NULL);
  memset(long_name, 'n', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  CHECK(sizeof long_name - 1 > JOBQ_SCHEDULE_NAME_MAX);
  CHECK_STATUS(jobq_schedule(q, "q", long_name, "@hourly", NULL, 0, NULL), JOBQ_E_INVALID_ARG);
  CHECK(strstr(jobq_last_error(), "longer than") != NULL);
  long_name[JOBQ_SCHEDULE_NAME_MAX] = '\0';
  CHECK_OK(jobq_schedule(q, "q", long_name, "@hourly", NULL, 0, NULL));
  CHECK_OK(jobq_unschedule(q, long_name));

  /* Bad specs: the message names the field at fault. */
  {
    static const struct {
      const char *spec, *says;
    } bad[] = {
        {"", "empty"},
        {"* * * *", "5"},
        {"61 * * * *", "minute"},
        {"* 24 * * *", "hour"},
        {"* * 0 * *", "day-of-month"},
        {"* * * 13 *", "month"},
        {"* * * * 8", "day-of-week"},
        {"*/0 * * * *", "step"},
        {"9-3 * * * *", "backwards"},
        {"* * * FOO *", "month"},
        {"0 0 30 2 *", "no time"},
        {"@every", "duration"},
        {"@every 10", "unit"},
        {"@every 5y", "unit"},
        {"@every 50ms", "minimum"},
        {"@sometimes", "@sometimes"},
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      jobq_status st = jobq_schedule(q, "q", "bad", bad[i].spec, NULL, 0, NULL);
      CHECK_STATUS(st, JOBQ_E_INVALID_ARG);
      if (strstr(jobq_last_error(), bad[i].says) == NULL) {
        fprintf(stderr, "  spec \"%s\": message \"%s\" lacks \"%s\"\n", bad[i].spec, jobq_last_error(), bad[i].says);
        CHECK(0);
      }
    }
  }
  /* A schedule's jobs take no unique key. */
  jobq_put_opts_init(&opts);
  opts.unique_key = "k";
  CHECK_STATUS(jobq_schedule(q, "q", "bad", "@hourly", NULL, 0, &opts), JOBQ_E_INVALID_ARG);
  /* Nothing was stored. */
  CHECK(stats_list_schedule(q, "bad") == 0);
  {
    char *json = NULL;
    CHECK_OK(jobq_stats_json(q, &json));
    CHECK(json != NULL && strstr(json, "schedules") == NULL);
    jobq_string_free(json);
  }

  CHECK_STATUS(jobq_unschedule(NULL, "n"), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_unschedule(q, NULL), JOBQ_E_INVALID_ARG);
  CHECK_STATUS(jobq_unschedule(q, ""), JOBQ_E_INVALID_ARG);
  CHECK_OK(jobq_close(q));
  CHECK_STATUS(jobq_schedule(q, "q", "n", "@hourly", NULL, 0, NULL), JOBQ_E_HANDLE);
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  tu_watchdog();
  CFG = "{\"durability\":\"normal\"}";
  EVERY = TU_SCALE(100);
  snprintf(EVERY_SPEC, sizeof EVERY_SPEC, "@every %lldms", (long long)EVERY);
  test_bad_input(dir);
  test_cron_specs(dir);
  test_every_fires_once_per_slot(dir);
  test_unschedule_and_replace(dir);
  test_many_handles_one_job_per_slot(dir);
  test_catch_up_is_one_job(dir);
  return check_finish("test_schedule");
}
