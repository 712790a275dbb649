/* pgcommon.h - shared libpq helpers for the River-style and pgmq-style rows.
 * opts: url=postgresql://... (default $JOBQ_BENCH_PG_URL or
 * postgresql://postgres@127.0.0.1:5432/test), poll_us=N (default 1000).
 * synchronous_commit=on is set on every connection (durable, like jobq full). */
#ifndef PGCOMMON_H
#define PGCOMMON_H
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qb.h"

static inline const char *pgc_default_url(void) {
    const char *u = getenv("JOBQ_BENCH_PG_URL");
    return (u && *u) ? u : "postgresql://postgres@127.0.0.1:5432/test";
}

static inline PGconn *pgc_connect(const char *url) {
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pg connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

static inline int pgc_exec(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) fprintf(stderr, "pg: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok ? 0 : -1;
}

static inline int pgc_prepare(PGconn *c, const char *name, const char *sql, int n) {
    PGresult *r = PQprepare(c, name, sql, n, NULL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "pg prepare %s: %s", name, PQerrorMessage(c));
    PQclear(r);
    return ok ? 0 : -1;
}
#endif
