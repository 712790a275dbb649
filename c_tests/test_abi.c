/* ABI contract: the numeric values of codes and outcomes, the v1 layout of
 * the public structs, options structs sized by the caller (an older,
 * smaller caller struct and a newer, larger one both work; too small is
 * refused), and the header version against the library version. */
#include <pthread.h>
#include <stddef.h>

#include "testutil.h"

/* jobq_put_opts exactly as API.md v1 declares it: what a program built
 * against the first header passes. */
struct v1_put_opts {
  uint32_t struct_size;
  int32_t priority;
  uint64_t delay_ms;
  uint32_t max_attempts;
  uint64_t lease_ms;
  const char *unique_key;
};

/* What a program built against some future header passes: the same
 * fields first, new ones after. */
struct future_put_opts {
  uint32_t struct_size;
  int32_t priority;
  uint64_t delay_ms;
  uint32_t max_attempts;
  uint64_t lease_ms;
  const char *unique_key;
  uint64_t added_later;
  const char *also_added;
  unsigned char more[24];
};

struct v1_worker_opts {
  uint32_t struct_size;
  uint32_t concurrency;
};

struct future_worker_opts {
  uint32_t struct_size;
  uint32_t concurrency;
  uint64_t added_later;
  void *also_added;
};

#define CANARY 0xA5

static int all_bytes(const unsigned char *p, size_t n, unsigned char v) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (p[i] != v) {
      return 0;
    }
  }
  return 1;
}

static pthread_mutex_t count_mu = PTHREAD_MUTEX_INITIALIZER;

static int read_count(const int *count) {
  int v;
  pthread_mutex_lock(&count_mu);
  v = *count;
  pthread_mutex_unlock(&count_mu);
  return v;
}

static jobq_outcome done_handler(const jobq_job *job, void *user_data) {
  int *count = user_data;
  (void)job;
  pthread_mutex_lock(&count_mu);
  (*count)++;
  pthread_mutex_unlock(&count_mu);
  return JOBQ_DONE;
}

static void test_codes(void) {
  CHECK(JOBQ_OK == 0);
  CHECK(JOBQ_TIMEOUT == 1);
  CHECK(JOBQ_DUPLICATE == 2);
  CHECK(JOBQ_E_INVALID_ARG == -1);
  CHECK(JOBQ_E_HANDLE == -2);
  CHECK(JOBQ_E_NOT_FOUND == -3);
  CHECK(JOBQ_E_STATE == -4);
  CHECK(JOBQ_E_BUSY == -5);
  CHECK(JOBQ_E_IO == -6);
  CHECK(JOBQ_E_CORRUPT == -7);
  CHECK(JOBQ_E_VERSION == -8);
  CHECK(JOBQ_E_TOO_BIG == -9);
  CHECK(JOBQ_E_SHUTDOWN == -10);
  CHECK(JOBQ_E_INTERNAL == -99);
  CHECK(JOBQ_DONE == 0);
  CHECK(JOBQ_RETRY == 1);
  CHECK(JOBQ_BURY == 2);
  /* Caught panics are reported, by name, like any other code. */
  CHECK(strcmp(jobq_status_str(JOBQ_E_INTERNAL), "JOBQ_E_INTERNAL") == 0);
}

static void test_layouts(void) {
  CHECK(offsetof(jobq_put_opts, struct_size) ==
        offsetof(struct v1_put_opts, struct_size));
  CHECK(offsetof(jobq_put_opts, priority) ==
        offsetof(struct v1_put_opts, priority));
  CHECK(offsetof(jobq_put_opts, delay_ms) ==
        offsetof(struct v1_put_opts, delay_ms));
  CHECK(offsetof(jobq_put_opts, max_attempts) ==
        offsetof(struct v1_put_opts, max_attempts));
  CHECK(offsetof(jobq_put_opts, lease_ms) ==
        offsetof(struct v1_put_opts, lease_ms));
  CHECK(offsetof(jobq_put_opts, unique_key) ==
        offsetof(struct v1_put_opts, unique_key));
  CHECK(sizeof(jobq_put_opts) >= sizeof(struct v1_put_opts));

  CHECK(offsetof(jobq_worker_opts, struct_size) == 0);
  CHECK(offsetof(jobq_worker_opts, concurrency) ==
        offsetof(struct v1_worker_opts, concurrency));
  CHECK(sizeof(jobq_worker_opts) >= sizeof(struct v1_worker_opts));

  CHECK(offsetof(jobq_payload, data) == 0);
  CHECK(offsetof(jobq_payload, len) == sizeof(void *));
  CHECK(sizeof(jobq_payload) == sizeof(void *) + sizeof(size_t));
}

static void test_version_macros(void) {
  char want[64];
  snprintf(want, sizeof want, "%d.%d.%d", JOBQ_VERSION_MAJOR,
           JOBQ_VERSION_MINOR, JOBQ_VERSION_PATCH);
  CHECK(jobq_version() != NULL && strcmp(jobq_version(), want) == 0);
  /* The library's additions agree with the three macros. */
  CHECK(strcmp(JOBQ_VERSION_STRING, want) == 0);
  CHECK(JOBQ_VERSION_NUMBER == JOBQ_VERSION_MAJOR * 10000 +
                                   JOBQ_VERSION_MINOR * 100 +
                                   JOBQ_VERSION_PATCH);
  CHECK(jobq_version_number() == (uint32_t)JOBQ_VERSION_NUMBER);
}

/* The exported (non-macro) init functions, for callers that look symbols
 * up with dlsym: they fill in the first shipped layout and say so. The
 * parentheses stop the function-like macros from expanding. */
static void test_exported_init_functions(jobq *q) {
  struct {
    struct v1_put_opts opts;
    unsigned char canary[32];
  } old;
  struct {
    struct v1_worker_opts opts;
    unsigned char canary[32];
  } wold;
  jobq_worker *w = NULL;
  uint64_t id = 0;
  int count = 0;

  memset(&old, CANARY, sizeof old);
  (jobq_put_opts_init)((jobq_put_opts *)&old.opts);
  CHECK(old.opts.struct_size == sizeof old.opts);
  CHECK(old.opts.priority == 0 && old.opts.delay_ms == 0 &&
        old.opts.max_attempts == 0 && old.opts.lease_ms == 0 &&
        old.opts.unique_key == NULL);
  CHECK(all_bytes(old.canary, sizeof old.canary, CANARY));
  old.opts.delay_ms = 60000;
  CHECK_OK(jobq_put(q, "dlsym", "x", 1, (const jobq_put_opts *)&old.opts,
                    &id));
  CHECK(tu_stat(q, "dlsym", "scheduled") == 1);
  CHECK_OK(jobq_cancel(q, id));

  memset(&wold, CANARY, sizeof wold);
  (jobq_worker_opts_init)((jobq_worker_opts *)&wold.opts);
  CHECK(wold.opts.struct_size == sizeof wold.opts);
  CHECK(wold.opts.concurrency == 1);
  CHECK(all_bytes(wold.canary, sizeof wold.canary, CANARY));
  CHECK_OK(jobq_worker_start(q, "dlsym", (const jobq_worker_opts *)&wold.opts,
                             done_handler, &count, &w));
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, -1));
  }
}

static void test_init_defaults(void) {
  jobq_put_opts opts;
  jobq_worker_opts wopts;
  memset(&opts, 0xEE, sizeof opts);
  jobq_put_opts_init(&opts);
  CHECK(opts.struct_size == sizeof opts);
  CHECK(opts.priority == 0);
  CHECK(opts.delay_ms == 0);
  CHECK(opts.max_attempts == 0);
  CHECK(opts.lease_ms == 0);
  CHECK(opts.unique_key == NULL);

  memset(&opts, 0xEE, sizeof opts);
  jobq_put_opts_init_sized(&opts, sizeof opts);
  CHECK(opts.struct_size == sizeof opts);
  CHECK(opts.priority == 0 && opts.delay_ms == 0 && opts.unique_key == NULL);

  memset(&wopts, 0xEE, sizeof wopts);
  jobq_worker_opts_init(&wopts);
  CHECK(wopts.struct_size == sizeof wopts);
  CHECK(wopts.concurrency == 1);
  memset(&wopts, 0xEE, sizeof wopts);
  jobq_worker_opts_init_sized(&wopts, sizeof wopts);
  CHECK(wopts.struct_size == sizeof wopts);
  CHECK(wopts.concurrency == 1);
}

/* An init call must never write past the size the caller gave. */
static void test_init_stays_inside(void) {
  struct {
    struct v1_put_opts opts;
    unsigned char canary[32];
  } old;
  struct {
    struct v1_worker_opts opts;
    unsigned char canary[32];
  } wold;
  struct {
    uint32_t struct_size;
    unsigned char canary[60];
  } tiny;

  memset(&old, CANARY, sizeof old);
  jobq_put_opts_init_sized((jobq_put_opts *)&old.opts, sizeof old.opts);
  CHECK(all_bytes(old.canary, sizeof old.canary, CANARY));
  CHECK(old.opts.struct_size == sizeof old.opts);
  CHECK(old.opts.priority == 0 && old.opts.unique_key == NULL);

  memset(&wold, CANARY, sizeof wold);
  jobq_worker_opts_init_sized((jobq_worker_opts *)&wold.opts,
                              sizeof wold.opts);
  CHECK(all_bytes(wold.canary, sizeof wold.canary, CANARY));
  CHECK(wold.opts.concurrency == 1);

  /* A size below any shipped layout: nothing useful to write, and nothing
   * may be written past it. */
  memset(&tiny, CANARY, sizeof tiny);
  jobq_put_opts_init_sized((jobq_put_opts *)&tiny, sizeof tiny.struct_size);
  CHECK(all_bytes(tiny.canary, sizeof tiny.canary, CANARY));
  memset(&tiny, CANARY, sizeof tiny);
  jobq_worker_opts_init_sized((jobq_worker_opts *)&tiny, 0);
  CHECK(all_bytes((const unsigned char *)&tiny, sizeof tiny, CANARY));
  jobq_put_opts_init_sized(NULL, sizeof(jobq_put_opts));
  jobq_worker_opts_init_sized(NULL, sizeof(jobq_worker_opts));
}

/* Fields are honoured through caller structs of either size. */
static void test_put_with_sized_structs(jobq *q) {
  struct v1_put_opts v1;
  struct future_put_opts fut;
  uint64_t low = 0, high = 0, dup = 0;
  jobq_job *job;

  memset(&fut, 0x5A, sizeof fut);
  jobq_put_opts_init_sized((jobq_put_opts *)&fut, sizeof fut);
  CHECK(fut.struct_size == sizeof fut);
  CHECK(fut.priority == 0 && fut.delay_ms == 0 && fut.unique_key == NULL);
  fut.priority = 9;
  fut.unique_key = "fut-key";
  /* A newer program sets fields this library has never heard of. */
  fut.added_later = 0xFFFFFFFFFFFFFFFFULL;
  fut.also_added = "ignored";
  memset(fut.more, 0x77, sizeof fut.more);
  CHECK_OK(jobq_put(q, "abi", "high", 4, (const jobq_put_opts *)&fut, &high));

  memset(&v1, 0x5A, sizeof v1);
  jobq_put_opts_init_sized((jobq_put_opts *)&v1, sizeof v1);
  v1.priority = 1;
  CHECK_OK(jobq_put(q, "abi", "low", 3, (const jobq_put_opts *)&v1, &low));

  /* The key in the larger struct took effect. */
  CHECK_STATUS(jobq_put(q, "abi", "x", 1, (const jobq_put_opts *)&fut, &dup),
               JOBQ_DUPLICATE);
  CHECK(dup == high);

  /* So did both priorities: 1 before 9. */
  job = tu_reserve(q, "abi", 0);
  if (job != NULL) {
    CHECK(jobq_job_id(job) == low);
    tu_ack_free(job);
  }
  job = tu_reserve(q, "abi", 0);
  if (job != NULL) {
    CHECK(jobq_job_id(job) == high);
    tu_ack_free(job);
  }

  /* delay_ms through the v1 struct. */
  jobq_put_opts_init_sized((jobq_put_opts *)&v1, sizeof v1);
  v1.delay_ms = 60000;
  CHECK_OK(jobq_put(q, "abi-delay", "x", 1, (const jobq_put_opts *)&v1, &low));
  CHECK(tu_stat(q, "abi-delay", "scheduled") == 1);
  CHECK_OK(jobq_cancel(q, low));

  /* A batch reads the options the same way. */
  {
    jobq_payload item;
    uint64_t id = 0;
    item.data = "b";
    item.len = 1;
    jobq_put_opts_init_sized((jobq_put_opts *)&fut, sizeof fut);
    fut.delay_ms = 60000;
    fut.added_later = 42;
    CHECK_OK(jobq_put_batch(q, "abi-batch", &item, 1,
                            (const jobq_put_opts *)&fut, &id));
    CHECK(tu_stat(q, "abi-batch", "scheduled") == 1);
    CHECK_OK(jobq_cancel(q, id));
  }
}

/* struct_size below the first shipped layout is refused, not guessed at. */
static void test_too_small(jobq *q) {
  struct v1_put_opts v1;
  uint64_t id = 777;
  uint32_t sizes[4];
  size_t i;
  sizes[0] = 0;
  sizes[1] = 4;
  sizes[2] = (uint32_t)offsetof(struct v1_put_opts, unique_key);
  sizes[3] = (uint32_t)sizeof v1 - 1;
  for (i = 0; i < 4; i++) {
    jobq_put_opts_init_sized((jobq_put_opts *)&v1, sizeof v1);
    v1.struct_size = sizes[i];
    CHECK_STATUS(jobq_put(q, "small", "x", 1, (const jobq_put_opts *)&v1, &id),
                 JOBQ_E_INVALID_ARG);
  }
  CHECK(id == 777);
  CHECK(tu_stat(q, "small", "ready") == 0);
}

static void test_worker_with_sized_structs(jobq *q) {
  struct v1_worker_opts v1;
  struct future_worker_opts fut;
  jobq_worker *w = NULL;
  int count = 0;
  int64_t deadline;

  jobq_worker_opts_init_sized((jobq_worker_opts *)&v1, sizeof v1);
  v1.concurrency = 2;
  CHECK_OK(jobq_worker_start(q, "wabi", (const jobq_worker_opts *)&v1,
                             done_handler, &count, &w));
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, -1));
  }

  memset(&fut, 0x5A, sizeof fut);
  jobq_worker_opts_init_sized((jobq_worker_opts *)&fut, sizeof fut);
  CHECK(fut.struct_size == sizeof fut);
  CHECK(fut.concurrency == 1);
  fut.added_later = 0xFFFFFFFFFFFFFFFFULL;
  fut.also_added = &fut;
  w = NULL;
  CHECK_OK(jobq_worker_start(q, "wabi", (const jobq_worker_opts *)&fut,
                             done_handler, &count, &w));
  tu_put(q, "wabi", "x", NULL);
  deadline = tu_now_ms() + TU_MUST_MS;
  while (read_count(&count) < 1 && tu_now_ms() < deadline) {
    tu_sleep_ms(5);
  }
  if (w != NULL) {
    CHECK_OK(jobq_worker_stop(w, -1));
  }
  CHECK(read_count(&count) == 1);

  /* Too small is refused, as for jobq_put_opts. */
  jobq_worker_opts_init_sized((jobq_worker_opts *)&v1, sizeof v1);
  v1.struct_size = 4;
  w = (jobq_worker *)&v1;
  CHECK_STATUS(jobq_worker_start(q, "wabi", (const jobq_worker_opts *)&v1,
                                 done_handler, &count, &w),
               JOBQ_E_INVALID_ARG);
  CHECK(w == (jobq_worker *)&v1);
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  jobq *q;
  tu_watchdog();
  test_codes();
  test_layouts();
  test_version_macros();
  test_init_defaults();
  test_init_stays_inside();
  q = tu_open(dir, "q.db", "{\"durability\":\"normal\"}");
  test_put_with_sized_structs(q);
  test_too_small(q);
  test_worker_with_sized_structs(q);
  test_exported_init_functions(q);
  CHECK_OK(jobq_close(q));
  return check_finish("test_abi");
}
