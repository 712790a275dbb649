/* Files jobq must refuse: a path it cannot create (JOBQ_E_IO), a file that
 * is not a jobq database (JOBQ_E_CORRUPT) and a queue file from a newer
 * jobq (JOBQ_E_VERSION). A refused file is never modified: it may hold
 * someone else's data. */
#include <sys/stat.h>

#include "testutil.h"

static int sentinel_storage;
#define Q_SENTINEL ((jobq *)&sentinel_storage)

/* The non-zero bytes of an empty SQLite database (page size 512) holding
 * one table, "CREATE TABLE notes(body TEXT)": a valid SQLite file that
 * belongs to another program. Written byte by byte so the test needs no
 * sqlite3 tool. */
static const unsigned char other_db_0[] = {
    0x53, 0x51, 0x4c, 0x69, 0x74, 0x65, 0x20, 0x66, 0x6f, 0x72, 0x6d,
    0x61, 0x74, 0x20, 0x33, 0x00, 0x02, 0x00, 0x01, 0x01, 0x00, 0x40,
    0x20, 0x20, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02};
static const unsigned char other_db_43[] = {0x01, 0x00, 0x00, 0x00, 0x04};
static const unsigned char other_db_59[] = {0x01};
static const unsigned char other_db_95[] = {0x01, 0x00, 0x2e, 0x63, 0x01,
                                            0x0d, 0x00, 0x00, 0x00, 0x01,
                                            0x01, 0xcb, 0x00, 0x01, 0xcb};
static const unsigned char other_db_459[] = {
    0x33, 0x01, 0x06, 0x17, 0x17, 0x17, 0x01, 0x47, 0x74, 0x61, 0x62, 0x6c,
    0x65, 0x6e, 0x6f, 0x74, 0x65, 0x73, 0x6e, 0x6f, 0x74, 0x65, 0x73, 0x02,
    0x43, 0x52, 0x45, 0x41, 0x54, 0x45, 0x20, 0x54, 0x41, 0x42, 0x4c, 0x45,
    0x20, 0x6e, 0x6f, 0x74, 0x65, 0x73, 0x28, 0x62, 0x6f, 0x64, 0x79, 0x20,
    0x54, 0x45, 0x58, 0x54, 0x29, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x02};

static void build_other_db(unsigned char *buf, size_t size) {
  memset(buf, 0, size);
  memcpy(buf + 0, other_db_0, sizeof other_db_0);
  memcpy(buf + 43, other_db_43, sizeof other_db_43);
  memcpy(buf + 59, other_db_59, sizeof other_db_59);
  memcpy(buf + 95, other_db_95, sizeof other_db_95);
  memcpy(buf + 459, other_db_459, sizeof other_db_459);
}

static int write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  size_t n;
  if (f == NULL) {
    return 0;
  }
  n = fwrite(data, 1, len, f);
  return fclose(f) == 0 && n == len;
}

/* Reads up to cap bytes; returns the count, or (size_t)-1 on error. */
static size_t read_file(const char *path, void *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  size_t n;
  if (f == NULL) {
    return (size_t)-1;
  }
  n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

/* Opens a file jobq must refuse with want, then checks it is unchanged. */
static void expect_refused(const char *path, const void *content, size_t len,
                           jobq_status want) {
  static unsigned char after[1 << 16];
  jobq *q = Q_SENTINEL;
  jobq_status st = jobq_open(path, NULL, &q);
  CHECK_STATUS(st, want);
  CHECK(q == Q_SENTINEL);
  CHECK(jobq_last_error()[0] != '\0');
  if (st == JOBQ_OK && q != Q_SENTINEL) {
    jobq_close(q);
  }
  CHECK(read_file(path, after, sizeof after) == len);
  CHECK(memcmp(after, content, len) == 0);
}

static void test_missing_directory(const char *dir) {
  char path[4096];
  jobq *q = Q_SENTINEL;
  snprintf(path, sizeof path, "%s/no/such/dir/q.db", dir);
  CHECK_STATUS(jobq_open(path, NULL, &q), JOBQ_E_IO);
  CHECK(q == Q_SENTINEL);
  CHECK(jobq_last_error()[0] != '\0');
}

static void test_not_a_database(const char *dir) {
  static char garbage[2048];
  static unsigned char other[1024];
  char path[4096];
  size_t i;

  for (i = 0; i + 1 < sizeof garbage; i++) {
    garbage[i] = "this is a spool file, not a database\n"[i % 37];
  }
  snprintf(path, sizeof path, "%s", check_file_path(dir, "garbage.db"));
  CHECK(write_file(path, garbage, sizeof garbage));
  expect_refused(path, garbage, sizeof garbage, JOBQ_E_CORRUPT);
  /* Still refused the second time: the first attempt did not "repair" it. */
  expect_refused(path, garbage, sizeof garbage, JOBQ_E_CORRUPT);

  build_other_db(other, sizeof other);
  snprintf(path, sizeof path, "%s", check_file_path(dir, "other.db"));
  CHECK(write_file(path, other, sizeof other));
  expect_refused(path, other, sizeof other, JOBQ_E_CORRUPT);
}

/* DESIGN.md: PRAGMA user_version carries the schema version. A file whose
 * user_version is far beyond anything this library knows was written by a
 * newer, incompatible jobq. user_version sits at offset 60 of the SQLite
 * header, big-endian. */
static void test_newer_version(const char *dir) {
  static unsigned char content[1 << 16];
  char path[4096];
  char wal[4096];
  struct stat st;
  size_t len;
  FILE *f;
  jobq *q = tu_open(dir, "newer.db", NULL);
  uint64_t id = tu_put(q, "v", "from the future", NULL);
  (void)id;
  CHECK_OK(jobq_close(q));

  snprintf(path, sizeof path, "%s", check_file_path(dir, "newer.db"));
  snprintf(wal, sizeof wal, "%s", check_file_path(dir, "newer.db-wal"));
  if (stat(wal, &st) == 0 && st.st_size > 0) {
    /* A clean close checkpoints the WAL; a leftover one would mask the
     * patched header and make this part meaningless. */
    CHECK(!"jobq_close left a non-empty WAL file behind");
  }

  f = fopen(path, "r+b");
  CHECK(f != NULL);
  if (f == NULL) {
    return;
  }
  {
    static const unsigned char huge[4] = {0x7f, 0xff, 0x00, 0x01};
    CHECK(fseek(f, 60, SEEK_SET) == 0);
    CHECK(fwrite(huge, 1, 4, f) == 4);
  }
  CHECK(fclose(f) == 0);

  len = read_file(path, content, sizeof content);
  CHECK(len != (size_t)-1 && len < sizeof content);
  if (len == (size_t)-1 || len >= sizeof content) {
    return;
  }
  expect_refused(path, content, len, JOBQ_E_VERSION);
}

int main(int argc, char **argv) {
  const char *dir = tu_dir(argc, argv);
  tu_watchdog();
  if (check_is_pg()) {
    /* Everything here is about files (a missing directory, a foreign or
     * newer file): on the PostgreSQL pass it runs on files all the same;
     * tests/pg_faults.rs has the PostgreSQL counterparts. */
    printf("test_files: file-only checks, run on files on the PostgreSQL pass too\n");
    unsetenv("JOBQ_TEST_PG_BASE");
  }
  test_missing_directory(dir);
  test_not_a_database(dir);
  test_newer_version(dir);
  /* After refusing files, the library still opens good ones. */
  {
    jobq *q = tu_open(dir, "q.db", NULL);
    CHECK_OK(jobq_close(q));
  }
  return check_finish("test_files");
}
