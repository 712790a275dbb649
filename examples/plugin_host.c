/* plugin_host: uses libjobq as a plugin, loaded and unloaded at run time.
 *
 *   plugin_host [LIBRARY [DIR]]
 *
 * LIBRARY: the libjobq shared library to dlopen (default "libjobq.so.0", found
 * the usual way: LD_LIBRARY_PATH, the cache, /usr/lib...). DIR: where to put
 * the queue file (default: a new directory under /tmp, removed at the end).
 *
 * Three times in one process: dlopen the library, resolve the functions with
 * dlsym, open a queue, put jobs, run a 4-thread worker pool over them, stop
 * it, close the queue, dlclose. Nothing here is linked against jobq: jobq.h is
 * included only for its types. At the end the process must have as many
 * threads as at the start (entries of /proc/self/task): the library joins
 * every thread it starts. Exits 0 when all went well. */
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"

#define ROUNDS 3
#define JOBS 40

/* The functions we use, as pointers resolved at run time. */
struct jobq_api {
  const char *(*version)(void);
  const char *(*status_str)(int code);
  const char *(*last_error)(void);
  jobq_status (*open)(const char *path, const char *config_json, jobq **out);
  jobq_status (*close)(jobq *q);
  jobq_status (*put)(jobq *q, const char *queue, const void *payload, size_t len, const jobq_put_opts *opts,
                     uint64_t *out_id);
  jobq_status (*stats_json)(jobq *q, char **out_json);
  void (*string_free)(char *s);
  /* jobq_worker_opts_init is a macro over this one in jobq.h. */
  void (*worker_opts_init_sized)(jobq_worker_opts *opts, size_t size);
  jobq_status (*worker_start)(jobq *q, const char *queue, const jobq_worker_opts *opts, jobq_handler handler,
                              void *user_data, jobq_worker **out);
  jobq_status (*worker_stop)(jobq_worker *w, int64_t timeout_ms);
};

/* dlsym gives a void *; copying it into a function pointer with memcpy is
 * what ISO C allows (a cast is only a POSIX extension). */
static int resolve(void *lib, const char *name, void *fn_ptr, size_t size) {
  void *sym = dlsym(lib, name);
  if (sym == NULL) {
    fprintf(stderr, "plugin_host: dlsym(%s): %s\n", name, dlerror());
    return -1;
  }
  memcpy(fn_ptr, &sym, size);
  return 0;
}
#define RESOLVE(lib, api, field, name) resolve((lib), (name), &(api)->field, sizeof (api)->field)

static int load_api(void *lib, struct jobq_api *api) {
  int bad = 0;
  bad |= RESOLVE(lib, api, version, "jobq_version");
  bad |= RESOLVE(lib, api, status_str, "jobq_status_str");
  bad |= RESOLVE(lib, api, last_error, "jobq_last_error");
  bad |= RESOLVE(lib, api, open, "jobq_open");
  bad |= RESOLVE(lib, api, close, "jobq_close");
  bad |= RESOLVE(lib, api, put, "jobq_put");
  bad |= RESOLVE(lib, api, stats_json, "jobq_stats_json");
  bad |= RESOLVE(lib, api, string_free, "jobq_string_free");
  bad |= RESOLVE(lib, api, worker_opts_init_sized, "jobq_worker_opts_init_sized");
  bad |= RESOLVE(lib, api, worker_start, "jobq_worker_start");
  bad |= RESOLVE(lib, api, worker_stop, "jobq_worker_stop");
  return bad;
}

/* Threads of this process: entries of /proc/self/task. */
static int count_threads(void) {
  int n = 0;
  struct dirent *e;
  DIR *d = opendir("/proc/self/task");
  if (d == NULL) return -1;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] != '.') n++;
  }
  closedir(d);
  return n;
}

/* Whether a file whose name contains "libjobq" is mapped into this process. */
static int jobq_mapped(void) {
  char line[4096];
  int found = 0;
  FILE *maps = fopen("/proc/self/maps", "r");
  if (maps == NULL) return -1;
  while (!found && fgets(line, sizeof line, maps) != NULL) found = strstr(line, "libjobq") != NULL;
  fclose(maps);
  return found;
}

static void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

/* Handler state shared by the pool's threads. */
struct tally {
  pthread_mutex_t lock;
  int handled;
};

static jobq_outcome handle(const jobq_job *job, void *user_data) {
  struct tally *t = user_data;
  (void)job;
  pthread_mutex_lock(&t->lock);
  t->handled++;
  pthread_mutex_unlock(&t->lock);
  return JOBQ_DONE;
}

static int handled(struct tally *t) {
  int n;
  pthread_mutex_lock(&t->lock);
  n = t->handled;
  pthread_mutex_unlock(&t->lock);
  return n;
}

/* One load-use-unload round; returns 0 on success. */
static int round_trip(const char *library, const char *dir, int round) {
  struct jobq_api api;
  struct tally tally;
  jobq_worker_opts wopts;
  jobq *q = NULL;
  jobq_worker *w = NULL;
  jobq_status st;
  char path[4096], payload[32], *stats = NULL;
  int i, waited, failed = 0;

  void *lib;
  memset(&api, 0, sizeof api);
  lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "plugin_host: dlopen(%s): %s\n", library, dlerror());
    return 1;
  }
  if (load_api(lib, &api) != 0) {
    dlclose(lib);
    return 1;
  }
  pthread_mutex_init(&tally.lock, NULL);
  tally.handled = 0;
  snprintf(path, sizeof path, "%s/plugin-%d.db", dir, round);
  st = api.open(path, "{\"durability\": \"normal\"}", &q);
  if (st != JOBQ_OK) {
    fprintf(stderr, "plugin_host: open %s: %s: %s\n", path, api.status_str(st), api.last_error());
    failed = 1;
    goto unload;
  }
  for (i = 0; i < JOBS && !failed; i++) {
    int len = snprintf(payload, sizeof payload, "job %d", i);
    st = api.put(q, "plugin", payload, (size_t)len, NULL, NULL);
    if (st != JOBQ_OK) {
      fprintf(stderr, "plugin_host: put: %s: %s\n", api.status_str(st), api.last_error());
      failed = 1;
    }
  }
  api.worker_opts_init_sized(&wopts, sizeof wopts);
  wopts.concurrency = 4;
  if (!failed && (st = api.worker_start(q, "plugin", &wopts, handle, &tally, &w)) != JOBQ_OK) {
    fprintf(stderr, "plugin_host: worker_start: %s: %s\n", api.status_str(st), api.last_error());
    failed = 1;
  }
  for (waited = 0; !failed && handled(&tally) < JOBS && waited < 10000; waited += 5) sleep_ms(5);
  if (w != NULL) {
    /* Rule 1 of plugin use: stop every worker (and wait for its handlers:
     * -1 = no timeout) before closing the queue and unloading. */
    st = api.worker_stop(w, -1);
    if (st != JOBQ_OK) {
      fprintf(stderr, "plugin_host: worker_stop: %s: %s\n", api.status_str(st), api.last_error());
      failed = 1;
    }
  }
  if (!failed && api.stats_json(q, &stats) == JOBQ_OK) {
    printf("round %d: jobq %s, %d jobs handled, stats %s\n", round, api.version(), handled(&tally), stats);
    api.string_free(stats);
  }
  if (handled(&tally) != JOBS) failed = 1;
  /* Rule 2: close every queue before dlclose. */
  if (q != NULL && (st = api.close(q)) != JOBQ_OK) {
    fprintf(stderr, "plugin_host: close: %s: %s\n", api.status_str(st), api.last_error());
    failed = 1;
  }
unload:
  pthread_mutex_destroy(&tally.lock);
  if (dlclose(lib) != 0) {
    fprintf(stderr, "plugin_host: dlclose: %s\n", dlerror());
    failed = 1;
  }
  return failed;
}

int main(int argc, char **argv) {
  const char *library = argc > 1 ? argv[1] : "libjobq.so.0";
  char tmp[] = "/tmp/jobq-plugin-XXXXXX";
  const char *dir = argc > 2 ? argv[2] : NULL;
  int round, before, after = -1, waited, failed = 0;

  if (dir == NULL && (dir = mkdtemp(tmp)) == NULL) {
    perror("plugin_host: mkdtemp");
    return 1;
  }
  before = count_threads();
  for (round = 1; round <= ROUNDS && !failed; round++) {
    failed = round_trip(library, dir, round);
  }
  /* A joined thread may linger in /proc for a moment after pthread_join. */
  for (waited = 0; waited <= 2000; waited += 10) {
    after = count_threads();
    if (after <= before) break;
    sleep_ms(10);
  }
  printf("threads: %d before, %d after %d load/unload rounds; library %s\n", before, after, ROUNDS,
         jobq_mapped() ? "still mapped (a thread-local destructor may keep it)" : "unmapped");
  if (after != before) {
    fprintf(stderr, "plugin_host: %d thread(s) left behind\n", after - before);
    failed = 1;
  }
  if (argc <= 2) {
    char path[4096];
    for (round = 1; round <= ROUNDS; round++) {
      const char *suffix[] = {"", "-wal", "-shm"};
      int s;
      for (s = 0; s < 3; s++) {
        snprintf(path, sizeof path, "%s/plugin-%d.db%s", dir, round, suffix[s]);
        unlink(path);
      }
    }
    rmdir(dir);
  }
  printf("%s\n", failed ? "FAILED" : "ok");
  return failed;
}
