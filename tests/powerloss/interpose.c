/* LD_PRELOAD interposer for tests/powerloss.rs: records, in one ordered log,
 * every change a process makes to a SQLite queue file, its -wal, -shm and
 * -journal (writes with their data, truncations, fsync/fdatasync begin and
 * end, unlinks), plus "marks": whatever the process writes to one marker
 * file (the workload's confirmations), so that "this call returned OK" is
 * ordered against the file changes.
 *
 * Environment: JOBQ_PL_DB    the queue file's path, as the process opens it
 *              JOBQ_PL_MARK  the marker file's path
 *              JOBQ_PL_LOG   where the log goes (not a traced file)
 *
 * A write is done and logged under one mutex, so the log's order is the
 * order in which writes completed. A sync logs SYNC_BEGIN before it calls
 * the real fsync/fdatasync and SYNC_END after it returned, outside the
 * mutex: writes logged before a SYNC_BEGIN are on disk once its SYNC_END
 * is logged; writes between the two may or may not be.
 *
 * Record: u8 kind, u8 file, u16 pad, u32 len, u64 off, u64 aux, then len
 * bytes (little endian, as the machine). Kinds below; files: 0 db, 1 wal,
 * 2 shm, 3 journal, 4 mark. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { K_WRITE = 1, K_TRUNC = 2, K_SYNC_BEGIN = 3, K_SYNC_END = 4, K_UNLINK = 5, K_MARK = 6, K_OPEN = 7 };
enum { F_DB = 0, F_WAL = 1, F_SHM = 2, F_JOURNAL = 3, F_MARK = 4, F_NONE = -1 };

struct rec {
    uint8_t kind, file;
    uint16_t pad;
    uint32_t len;
    uint64_t off, aux;
};

#define MAX_FD 65536
static signed char fd_file[MAX_FD];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = -1;
static char db_path[4096], mark_path[4096];
static uint64_t next_sync = 1;
static int ready;

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off64_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);

static void init(void) {
    if (ready)
        return;
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_pwritev = dlsym(RTLD_NEXT, "pwritev");
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_openat64 = dlsym(RTLD_NEXT, "openat64");
    real_close = dlsym(RTLD_NEXT, "close");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
    real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_unlink = dlsym(RTLD_NEXT, "unlink");
    real_unlinkat = dlsym(RTLD_NEXT, "unlinkat");
    memset(fd_file, F_NONE, sizeof fd_file);
    const char *db = getenv("JOBQ_PL_DB"), *mark = getenv("JOBQ_PL_MARK"), *log = getenv("JOBQ_PL_LOG");
    if (db && mark && log && strlen(db) < sizeof db_path - 16 && strlen(mark) < sizeof mark_path) {
        strcpy(db_path, db);
        strcpy(mark_path, mark);
        int (*o)(const char *, int, ...) = real_open64 ? real_open64 : real_open;
        log_fd = o(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    }
    ready = 1;
}

__attribute__((constructor)) static void ctor(void) { init(); }

/* Which traced file `path` is (F_NONE if none). */
static int classify(const char *path) {
    if (log_fd < 0 || !path)
        return F_NONE;
    size_t n = strlen(db_path);
    if (strcmp(path, mark_path) == 0)
        return F_MARK;
    if (strncmp(path, db_path, n) != 0)
        return F_NONE;
    const char *rest = path + n;
    if (*rest == 0)
        return F_DB;
    if (strcmp(rest, "-wal") == 0)
        return F_WAL;
    if (strcmp(rest, "-shm") == 0)
        return F_SHM;
    if (strcmp(rest, "-journal") == 0)
        return F_JOURNAL;
    return F_NONE;
}

static int tracked(int fd) { return fd >= 0 && fd < MAX_FD && log_fd >= 0 ? fd_file[fd] : F_NONE; }

/* Appends one record; the caller holds mu. A log that cannot be written
 * makes the run useless: abort loudly rather than produce a wrong log. */
static void emit(int kind, int file, uint64_t off, uint64_t aux, const struct iovec *data, int n) {
    struct rec r = {(uint8_t)kind, (uint8_t)file, 0, 0, off, aux};
    struct iovec v[64];
    size_t total = 0;
    if (n > 63)
        abort();
    v[0].iov_base = &r;
    v[0].iov_len = sizeof r;
    for (int i = 0; i < n; i++) {
        v[i + 1] = data[i];
        total += data[i].iov_len;
    }
    r.len = (uint32_t)total;
    size_t want = sizeof r + total;
    ssize_t w = real_writev(log_fd, v, n + 1);
    if (w < 0 || (size_t)w != want)
        abort();
}

/* Keeps only the first `done` bytes of iov (what a short write wrote). */
static int clip(const struct iovec *iov, int n, size_t done, struct iovec *out) {
    int k = 0;
    for (int i = 0; i < n && done > 0 && k < 63; i++) {
        size_t l = iov[i].iov_len < done ? iov[i].iov_len : done;
        out[k].iov_base = iov[i].iov_base;
        out[k].iov_len = l;
        done -= l;
        k++;
    }
    return k;
}

static void note_open(int fd, const char *path, int flags) {
    int f = classify(path);
    if (fd < 0 || fd >= MAX_FD)
        return;
    fd_file[fd] = (signed char)f;
    if (f != F_NONE && f != F_MARK) {
        pthread_mutex_lock(&mu);
        emit(K_OPEN, f, 0, (flags & O_TRUNC) ? 1 : 0, NULL, 0);
        pthread_mutex_unlock(&mu);
    }
}

#define OPEN_BODY(real, ...)                     \
    init();                                      \
    mode_t mode = 0;                             \
    if (flags & (O_CREAT | O_TMPFILE)) {         \
        va_list ap;                              \
        va_start(ap, flags);                     \
        mode = va_arg(ap, mode_t);               \
        va_end(ap);                              \
    }                                            \
    int fd = real(__VA_ARGS__, flags, mode);     \
    note_open(fd, path, flags);                  \
    return fd;

int open(const char *path, int flags, ...) { OPEN_BODY(real_open, path) }
int open64(const char *path, int flags, ...) { OPEN_BODY(real_open64, path) }
int openat(int dirfd, const char *path, int flags, ...) { OPEN_BODY(real_openat, dirfd, path) }
int openat64(int dirfd, const char *path, int flags, ...) { OPEN_BODY(real_openat64, dirfd, path) }

int close(int fd) {
    init();
    if (fd >= 0 && fd < MAX_FD)
        fd_file[fd] = F_NONE;
    return real_close(fd);
}

/* A positioned write of iov to a traced file, logged under mu. */
static ssize_t traced_pwritev(int f, int fd, const struct iovec *iov, int n, off_t off) {
    pthread_mutex_lock(&mu);
    ssize_t w = real_pwritev(fd, iov, n, off);
    if (w > 0) {
        struct iovec c[63];
        int k = clip(iov, n, (size_t)w, c);
        emit(K_WRITE, f, (uint64_t)off, 0, c, k);
    }
    pthread_mutex_unlock(&mu);
    return w;
}

/* write/writev at the file position: marks are logged as marks. */
static ssize_t traced_writev(int f, int fd, const struct iovec *iov, int n) {
    pthread_mutex_lock(&mu);
    off_t off = f == F_MARK ? 0 : lseek(fd, 0, SEEK_CUR);
    ssize_t w = real_writev(fd, iov, n);
    if (w > 0) {
        struct iovec c[63];
        int k = clip(iov, n, (size_t)w, c);
        emit(f == F_MARK ? K_MARK : K_WRITE, f, (uint64_t)off, 0, c, k);
    }
    pthread_mutex_unlock(&mu);
    return w;
}

ssize_t write(int fd, const void *buf, size_t len) {
    init();
    int f = tracked(fd);
    if (f == F_NONE)
        return real_write(fd, buf, len);
    struct iovec v = {(void *)buf, len};
    return traced_writev(f, fd, &v, 1);
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
    init();
    int f = tracked(fd);
    if (f == F_NONE || n > 63)
        return real_writev(fd, iov, n);
    return traced_writev(f, fd, iov, n);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off) {
    init();
    int f = tracked(fd);
    if (f == F_NONE)
        return real_pwrite(fd, buf, len, off);
    struct iovec v = {(void *)buf, len};
    return traced_pwritev(f, fd, &v, 1, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t off) {
    init();
    int f = tracked(fd);
    if (f == F_NONE)
        return real_pwrite64(fd, buf, len, off);
    struct iovec v = {(void *)buf, len};
    return traced_pwritev(f, fd, &v, 1, (off_t)off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off) {
    init();
    int f = tracked(fd);
    if (f == F_NONE || n > 63)
        return real_pwritev(fd, iov, n, off);
    return traced_pwritev(f, fd, iov, n, off);
}

static int traced_trunc(int fd, uint64_t len, int r) {
    int f = tracked(fd);
    if (f != F_NONE && r == 0) {
        /* Logged after the call, still ordered: SQLite truncates under its locks. */
        emit(K_TRUNC, f, len, 0, NULL, 0);
    }
    return r;
}

int ftruncate(int fd, off_t len) {
    init();
    pthread_mutex_lock(&mu);
    int r = traced_trunc(fd, (uint64_t)len, real_ftruncate(fd, len));
    pthread_mutex_unlock(&mu);
    return r;
}

int ftruncate64(int fd, off64_t len) {
    init();
    pthread_mutex_lock(&mu);
    int r = traced_trunc(fd, (uint64_t)len, real_ftruncate64(fd, len));
    pthread_mutex_unlock(&mu);
    return r;
}

static int traced_sync(int fd, int (*real)(int)) {
    init();
    int f = tracked(fd);
    if (f == F_NONE || f == F_MARK)
        return real(fd);
    pthread_mutex_lock(&mu);
    uint64_t id = next_sync++;
    emit(K_SYNC_BEGIN, f, 0, id, NULL, 0);
    pthread_mutex_unlock(&mu);
    int r = real(fd);
    int saved = errno;
    pthread_mutex_lock(&mu);
    emit(K_SYNC_END, f, r == 0 ? 0 : 1, id, NULL, 0);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return r;
}

int fsync(int fd) { return traced_sync(fd, real_fsync); }
int fdatasync(int fd) { return traced_sync(fd, real_fdatasync); }

static void traced_unlink(const char *path, int r) {
    int f = classify(path);
    if (r == 0 && f != F_NONE && f != F_MARK) {
        pthread_mutex_lock(&mu);
        emit(K_UNLINK, f, 0, 0, NULL, 0);
        pthread_mutex_unlock(&mu);
    }
}

int unlink(const char *path) {
    init();
    int r = real_unlink(path);
    traced_unlink(path, r);
    return r;
}

int unlinkat(int dirfd, const char *path, int flags) {
    init();
    int r = real_unlinkat(dirfd, path, flags);
    traced_unlink(path, r);
    return r;
}
