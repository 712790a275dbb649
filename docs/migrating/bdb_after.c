/* bdb_after.c: the Berkeley DB queue of docs/migrating.md, moved to jobq.
 *
 *   bdb_after STORE put TEXT...              producer: one job per TEXT
 *   bdb_after STORE work [THREADS]           worker pool, until SIGINT/SIGTERM
 *   bdb_after STORE drain ENVDIR QUEUEFILE   copies the records left in the
 *                                            DB_QUEUE into jobq (old processes
 *                                            stopped; built with -DWITH_BDB ... -ldb)
 *
 * STORE is a queue file or a postgresql:// URL. */
#define _POSIX_C_SOURCE 200809L
#ifdef WITH_BDB
#define _DEFAULT_SOURCE /* db.h uses u_int and u_long */
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobq.h"
#ifdef WITH_BDB
#include <db.h>
#endif

#define QUEUE "orders"

/* The application's handler, unchanged: 0 = done. Records copied from the
 * DB_QUEUE still carry its padding to re_len, as they always did. */
static int process_order(const uint8_t *rec, size_t len) {
  printf("order %.*s\n", (int)len, (const char *)rec);
  fflush(stdout);
  return 0;
}

/* Was enqueue(): txn_begin, put(DB_APPEND), commit. */
static int enqueue(jobq *q, const void *rec, size_t len) {
  jobq_status st = jobq_put(q, QUEUE, rec, len, NULL, NULL); /* committed and synced on return */
  if (st != JOBQ_OK) fprintf(stderr, "put: %s: %s\n", jobq_status_str(st), jobq_last_error());
  return st == JOBQ_OK ? 0 : -1;
}

/* Was the body of a consumer thread's transaction. The pool runs it on its
 * threads; what it returns replaces the commit (JOBQ_DONE) or the abort
 * (JOBQ_RETRY: again after a backoff, dead after max_attempts). */
static jobq_outcome handle(const jobq_job *job, void *user_data) {
  size_t len;
  const uint8_t *rec = jobq_job_payload(job, &len);
  (void)user_data;
  return process_order(rec, len) == 0 ? JOBQ_DONE : JOBQ_RETRY;
}

/* Was: N threads, each looping txn_begin / get(DB_CONSUME_WAIT) / commit. */
static int work(jobq *q, uint32_t threads, const sigset_t *stop) {
  jobq_worker_opts opts;
  jobq_worker *w;
  int sig;
  jobq_worker_opts_init(&opts);
  opts.concurrency = threads;
  if (jobq_worker_start(q, QUEUE, &opts, handle, NULL, &w) != JOBQ_OK) {
    fprintf(stderr, "worker: %s\n", jobq_last_error());
    return -1;
  }
  sigwait(stop, &sig);
  /* Waits for running handlers and stores their outcomes; jobs leased
   * ahead of them go back to the queue without counting an attempt. */
  return jobq_worker_stop(w, 30000) == JOBQ_OK ? 0 : -1;
}

#ifdef WITH_BDB
/* The drain. Each record is consumed in a BDB transaction that commits
 * only after jobq_put returned: a crash in between rolls the consume back
 * (DB_RECOVER below), and the next run puts the record again. Its record
 * number as unique key makes that JOBQ_DUPLICATE while the first copy is
 * not yet acked. */
static int drain(jobq *q, const char *home, const char *file) {
  DB_ENV *env;
  DB *db = NULL;
  int ret;
  if ((ret = db_env_create(&env, 0)) != 0) return ret;
  ret = env->open(env, home, DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL | DB_RECOVER, 0);
  if (ret == 0) ret = db_create(&db, env, 0);
  if (ret == 0) ret = db->open(db, NULL, file, NULL, DB_QUEUE, DB_AUTO_COMMIT, 0);
  while (ret == 0) {
    DB_TXN *txn;
    DBT key, data;
    db_recno_t recno;
    jobq_put_opts opts;
    jobq_status st;
    char ukey[32];
    memset(&key, 0, sizeof key);
    memset(&data, 0, sizeof data);
    key.data = &recno;
    key.ulen = sizeof recno;
    key.flags = DB_DBT_USERMEM;
    data.flags = DB_DBT_MALLOC;
    if ((ret = env->txn_begin(env, NULL, &txn, 0)) != 0) break;
    if ((ret = db->get(db, txn, &key, &data, DB_CONSUME)) != 0) { /* DB_NOTFOUND: empty */
      txn->abort(txn);
      break;
    }
    snprintf(ukey, sizeof ukey, "bdb:%lu", (unsigned long)recno);
    jobq_put_opts_init(&opts);
    opts.unique_key = ukey;
    st = jobq_put(q, QUEUE, data.data, data.size, &opts, NULL);
    free(data.data);
    if (st == JOBQ_OK || st == JOBQ_DUPLICATE) {
      ret = txn->commit(txn, 0);
    } else {
      fprintf(stderr, "put %s: %s: %s\n", ukey, jobq_status_str(st), jobq_last_error());
      txn->abort(txn);
      ret = -1;
    }
  }
  if (db != NULL) db->close(db, 0);
  env->close(env, 0);
  return ret == DB_NOTFOUND ? 0 : -1;
}
#endif

int main(int argc, char **argv) {
  jobq *q;
  sigset_t stop;
  int i, rc = 0;
  if (argc < 3) {
    fprintf(stderr, "usage: %s STORE put TEXT... | work [THREADS] | drain ENVDIR QUEUEFILE\n", argv[0]);
    return 2;
  }
  /* Block the stop signals before jobq_open starts the library's threads,
   * so that every thread inherits the mask and sigwait gets them. */
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop, NULL);
  if (jobq_open(argv[1], NULL, &q) != JOBQ_OK) {
    fprintf(stderr, "open %s: %s\n", argv[1], jobq_last_error());
    return 1;
  }
  if (strcmp(argv[2], "put") == 0) {
    for (i = 3; i < argc && rc == 0; i++) rc = enqueue(q, argv[i], strlen(argv[i]));
  } else if (strcmp(argv[2], "work") == 0) {
    rc = work(q, argc > 3 ? (uint32_t)atoi(argv[3]) : 4, &stop);
#ifdef WITH_BDB
  } else if (strcmp(argv[2], "drain") == 0 && argc == 5) {
    rc = drain(q, argv[3], argv[4]);
#endif
  } else {
    rc = -1;
    fprintf(stderr, "%s: unknown command %s\n", argv[0], argv[2]);
  }
  jobq_close(q);
  return rc == 0 ? 0 : 1;
}
