/* The C++17 wrapper include/jobq.hpp: errors as exceptions, RAII owners,
 * every Queue/Job/Worker/Watch call (the batched ones too), escape hatches, and a handler that throws
 * (caught by the trampoline and counted as a retry). argv[1] = a fresh
 * directory. */
#include <poll.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "check.h"
#include "jobq.hpp"

using jobqpp::Error;
using jobqpp::Job;
using jobqpp::JobView;
using jobqpp::Outcome;
using jobqpp::PutOptions;
using jobqpp::Queue;
using jobqpp::Watch;
using jobqpp::Worker;

// Owners are move-only; moving never throws.
static_assert(!std::is_copy_constructible_v<Queue> && !std::is_copy_assignable_v<Queue>);
static_assert(!std::is_copy_constructible_v<Job> && !std::is_copy_assignable_v<Job>);
static_assert(!std::is_copy_constructible_v<Worker> && !std::is_copy_assignable_v<Worker>);
static_assert(!std::is_copy_constructible_v<Watch> && !std::is_copy_assignable_v<Watch>);
static_assert(std::is_nothrow_move_constructible_v<Queue> && std::is_nothrow_move_assignable_v<Queue>);
static_assert(std::is_nothrow_move_constructible_v<Job> && std::is_nothrow_move_assignable_v<Job>);
static_assert(std::is_nothrow_move_constructible_v<Worker> && std::is_nothrow_move_assignable_v<Worker>);
static_assert(std::is_nothrow_move_constructible_v<Watch> && std::is_nothrow_move_assignable_v<Watch>);

/* Runs `body`, which must throw jobqpp::Error with `want`; returns the status seen. */
template <class F>
static jobq_status expect_error(F &&body, jobq_status want, const char *what, int line) {
  jobq_status got = JOBQ_OK;
  try {
    body();
    fprintf(stderr, "%s:%d: %s did not throw (want %s)\n", __FILE__, line, what, jobq_status_str(want));
  } catch (const Error &e) {
    got = e.status();
    if (got != want) {
      fprintf(stderr, "%s:%d: %s threw %s, want %s\n", __FILE__, line, what, e.what(), jobq_status_str(want));
    }
  }
  return got;
}
#define CHECK_THROWS(stmt, want) CHECK(expect_error([&] { stmt; }, (want), #stmt, __LINE__) == (want))

/* Waits up to 10 s (times JOBQ_TEST_SLOW, e.g. under valgrind) for cond(). */
template <class F>
static bool eventually(F &&cond) {
  const char *slow = getenv("JOBQ_TEST_SLOW");
  int factor = slow != nullptr && atoi(slow) > 0 ? atoi(slow) : 1;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10 * factor);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

static bool contains(const std::string &s, const char *needle) { return s.find(needle) != std::string::npos; }

static void test_version_and_errors(const char *dir) {
  CHECK(std::strcmp(jobqpp::version(), JOBQ_VERSION_STRING) == 0);
  CHECK(jobqpp::version_number() == JOBQ_VERSION_NUMBER);

  // A missing directory: JOBQ_E_IO, with jobq_last_error()'s text in the exception.
  std::string missing = std::string(dir) + "/no/such/dir/q.db";
  try {
    Queue q(missing);
    CHECK(!"open in a missing directory succeeded");
  } catch (const Error &e) {
    CHECK(e.status() == JOBQ_E_IO);
    CHECK(std::strcmp(e.name(), "JOBQ_E_IO") == 0);
    CHECK(!e.message().empty());
    CHECK(std::strncmp(e.what(), "JOBQ_E_IO: ", 11) == 0);
    CHECK(contains(e.what(), e.message().c_str()));
  }
  // An unknown config key: JOBQ_E_INVALID_ARG naming the key; also catchable as std::exception.
  try {
    Queue q(check_path(dir, "cfg.db"), std::string("{\"no_such_key\": 1}"));
    CHECK(!"open with an unknown key succeeded");
  } catch (const std::exception &e) {
    const Error *err = dynamic_cast<const Error *>(&e);
    CHECK(err != nullptr && err->status() == JOBQ_E_INVALID_ARG);
    CHECK(contains(e.what(), "no_such_key"));
  }
}

static void test_queue_and_jobs(const char *dir) {
  Queue q(check_path(dir, "jobs.db"), R"({"backoff_base_ms": 60000, "backoff_jitter": 0})");
  CHECK(static_cast<bool>(q));

  // put: ids increase; payloads are bytes (embedded NUL kept).
  std::uint64_t a = q.put("mail", "hello");
  std::uint64_t b = q.put("mail", std::string("b\0in", 4));
  const unsigned char raw[3] = {0, 255, 7};
  std::uint64_t c = q.put("other", raw, sizeof raw);
  CHECK(a > 0 && b > a && c > b);

  // put_unique: like std::map::insert.
  auto first = q.put_unique("mail", "user-42", "digest");
  auto again = q.put_unique("mail", "user-42", "digest again");
  CHECK(first.second && !again.second && again.first == first.first);
  PutOptions keyed;
  keyed.unique_key = "user-42";
  CHECK(q.put("mail", "x", keyed) == first.first);  // put() gives the live job's id

  // put_batch: one id per payload, in order.
  std::vector<std::string> many = {"one", "two", "three"};
  std::vector<std::uint64_t> ids = q.put_batch("batch", many);
  CHECK(ids.size() == 3 && ids[0] < ids[1] && ids[1] < ids[2]);
  std::vector<std::uint64_t> ids2 = q.put_batch("batch", {"four", "five"});
  CHECK(ids2.size() == 2 && ids2[0] > ids[2]);

  // reserve + accessors + ack.
  std::optional<Job> job = q.reserve("mail", 1000);
  CHECK(job.has_value());
  if (job) {
    CHECK(job->id() == a);
    CHECK(job->queue() == "mail");
    CHECK(job->payload() == "hello");
    CHECK(job->attempt() == 1);
    CHECK(job->view().id() == a);
    job->touch(60000);
    job->ack();
    CHECK_THROWS(job->ack(), JOBQ_E_STATE);  // finished already: the lease token is spent
  }
  // Binary payload.
  job = q.reserve("mail");
  CHECK(job && job->id() == b && job->payload() == std::string_view("b\0in", 4));
  // release: back at once, the attempt is not counted as a failure.
  if (job) job->release();
  job = q.reserve("mail");
  CHECK(job && job->id() == b);
  // fail: scheduled (a minute of backoff), so the next reserve gets the digest.
  if (job) job->fail("smtp down");
  job = q.reserve("mail");
  CHECK(job && job->id() == first.first);
  // bury + kick.
  if (job) job->bury("bad address");
  CHECK(!q.reserve("mail", 0).has_value());  // nothing ready: JOBQ_TIMEOUT is nullopt
  CHECK(q.kick("mail", 10) == 1);
  job = q.reserve("mail");
  CHECK(job && job->id() == first.first);
  if (job) job->ack();

  // Job is move-only; the moved-from owner is empty.
  std::optional<Job> other = q.reserve("other");
  CHECK(other.has_value());
  if (other) {
    CHECK(other->payload() == std::string_view(reinterpret_cast<const char *>(raw), sizeof raw));
    Job moved = std::move(*other);
    CHECK(other->capi() == nullptr && moved.capi() != nullptr);
    // Escape hatch: hand the jobq_job * to C code, which finishes and frees it.
    jobq_job *rawjob = moved.release_capi();
    CHECK(moved.capi() == nullptr);
    CHECK_OK(jobq_ack(rawjob));
    jobq_job_free(rawjob);
  }

  // cancel: a job not currently delivered; a second cancel finds nothing.
  q.cancel(ids[2]);
  CHECK_THROWS(q.cancel(ids[2]), JOBQ_E_NOT_FOUND);

  // stats_json: b is scheduled (failed, backing off), batch has 4 ready.
  std::string stats = q.stats_json();
  CHECK(contains(stats, "\"mail\":{\"ready\":0,\"scheduled\":1,\"reserved\":0,\"dead\":0,\"done\":0,\"paused\":false}"));
  CHECK(contains(stats, "\"batch\":{\"ready\":4"));

  // pause/resume: a paused queue takes puts but delivers nothing until resumed.
  q.pause("held");
  q.put("held", "waits");
  CHECK(!q.reserve("held").has_value());
  CHECK(contains(q.stats_json(), "\"held\":{\"ready\":1,\"scheduled\":0,\"reserved\":0,\"dead\":0,\"done\":0,\"paused\":true}"));
  q.resume("held");
  std::optional<Job> unheld = q.reserve("held");
  CHECK(unheld.has_value() && unheld->payload() == "waits");
  if (unheld) unheld->ack();
  CHECK(contains(q.stats_json(), "\"held\":{\"ready\":0,\"scheduled\":0,\"reserved\":0,\"dead\":0,\"done\":0,\"paused\":false}"));
  CHECK_THROWS(q.pause(""), JOBQ_E_INVALID_ARG);
  CHECK_THROWS(q.resume(""), JOBQ_E_INVALID_ARG);

  // schedule/unschedule: a stored schedule puts jobs; stats list it; bad specs throw.
  {
    PutOptions so;
    so.priority = 2;
    q.schedule("ticks", "cpp-tick", "@every 100ms", "tick", so);
    CHECK(contains(q.stats_json(), "\"name\":\"cpp-tick\""));
    std::optional<Job> tick = q.reserve("ticks", 5000);
    CHECK(tick.has_value() && tick->payload() == "tick");
    if (tick) tick->ack();
    q.unschedule("cpp-tick");
    q.unschedule("cpp-tick");
    CHECK(!contains(q.stats_json(), "cpp-tick"));
    CHECK_THROWS(q.schedule("ticks", "bad", "61 * * * *"), JOBQ_E_INVALID_ARG);
    CHECK_THROWS(q.unschedule(""), JOBQ_E_INVALID_ARG);
  }

  // config: a cap of 1 reserved job; null removes it; bad input throws.
  q.config("capped", R"({"max_reserved": 1})");
  q.put("capped", "c1");
  q.put("capped", "c2");
  std::optional<Job> c1 = q.reserve("capped");
  CHECK(c1.has_value());
  CHECK(!q.reserve("capped").has_value());
  CHECK(contains(q.stats_json(), "\"limits\":{\"max_reserved\":1}"));
  CHECK_THROWS(q.config("capped", R"({"max_reserved": 0})"), JOBQ_E_INVALID_ARG);
  CHECK_THROWS(q.config("capped", "not json"), JOBQ_E_INVALID_ARG);
  q.config("capped", R"({"max_reserved": null})");
  std::optional<Job> c2 = q.reserve("capped");
  CHECK(c2.has_value());
  if (c1) c1->ack();
  if (c2) c2->ack();

  // fail()/bury() without a reason (or with nullptr) pass NULL, as a C
  // caller would: the library stores its own "failed"/"buried" (what is
  // stored is checked from Rust: tests/c_api.rs,
  // cpp_fail_and_bury_without_a_reason_store_what_c_stores).
  q.put_batch("noreason", {"f", "b", "n"});
  std::optional<Job> nr = q.reserve("noreason");
  if (nr) nr->fail();
  nr = q.reserve("noreason");
  if (nr) nr->bury();
  nr = q.reserve("noreason");
  if (nr) nr->bury(nullptr);
  CHECK(contains(q.stats_json(), "\"noreason\":{\"ready\":0,\"scheduled\":1,\"reserved\":0,\"dead\":2,"));

  // Errors from calls on the queue: an empty queue name.
  CHECK_THROWS(q.put("", "x"), JOBQ_E_INVALID_ARG);

  // capi(): the C API on the same handle.
  std::uint64_t cid = 0;
  CHECK_OK(jobq_put(q.capi(), "c", "from C", 6, nullptr, &cid));
  CHECK(cid > ids2[1]);

  // Queue is move-only; close() closes once.
  Queue moved = std::move(q);
  CHECK(!q && moved && q.capi() == nullptr);
  moved.close();
  CHECK(!moved);
  moved.close();  // no-op

  // release(): take the jobq * out, then adopt it again.
  Queue q2(check_path(dir, "jobs.db"));
  jobq *rawq = q2.release();
  CHECK(!q2 && rawq != nullptr);
  Queue adopted(rawq);
  CHECK(adopted.reserve("c") && adopted.capi() == rawq);
}  // ~Queue closes `adopted`

// Job::ack_and_reserve, Queue::reserve_many, jobqpp::ack_many.
static void test_batched_calls(const char *dir) {
  Queue q(check_path(dir, "many.db"), R"({"backoff_base_ms": 60000, "backoff_jitter": 0})");
  std::vector<std::uint64_t> ids = q.put_batch("m", {"a", "b", "c"});

  // A worker's loop: each call acks the job held and leases the next.
  std::vector<std::uint64_t> seen;
  for (std::optional<Job> job = q.reserve("m"); job;) {
    seen.push_back(job->id());
    std::optional<Job> next = job->ack_and_reserve("m");
    CHECK_THROWS(job->ack(), JOBQ_E_STATE);  // acked by ack_and_reserve
    job = std::move(next);
  }
  CHECK(seen == ids);
  CHECK(contains(q.stats_json(), "\"m\":{\"ready\":0,\"scheduled\":0,\"reserved\":0,\"dead\":0,\"done\":0,\"paused\":false}"));

  // reserve_many: up to max, in order; empty on timeout.
  std::vector<std::uint64_t> more = q.put_batch("m", {"1", "2", "3", "4", "5"});
  std::vector<Job> batch = q.reserve_many("m", 3);
  CHECK(batch.size() == 3 && batch[0].id() == more[0] && batch[2].id() == more[2]);
  std::vector<Job> rest = q.reserve_many("m", 10, 100);
  CHECK(rest.size() == 2 && rest[0].id() == more[3] && rest[1].payload() == "5");
  CHECK(q.reserve_many("m", 4, 0).empty());
  CHECK_THROWS(q.reserve_many("m", 0), JOBQ_E_INVALID_ARG);
  CHECK_THROWS(q.reserve_many("m", JOBQ_RESERVE_MANY_MAX + 1), JOBQ_E_INVALID_ARG);

  // ack_many: per-job statuses; a stale one (acked already) is JOBQ_E_STATE.
  rest[0].ack();
  std::vector<jobq_status> st = jobqpp::ack_many(rest);
  CHECK(st.size() == 2 && st[0] == JOBQ_E_STATE && st[1] == JOBQ_OK);
  st = jobqpp::ack_many(batch);
  CHECK(st == std::vector<jobq_status>(3, JOBQ_OK));
  CHECK(jobqpp::ack_many(std::vector<Job>()).empty());
  CHECK(contains(q.stats_json(), "\"m\":{\"ready\":0,\"scheduled\":0,\"reserved\":0,\"dead\":0,\"done\":0,\"paused\":false}"));

  // Jobs of two Queues in one ack_many: refused as a whole, nothing acked.
  Queue other(check_path(dir, "many-other.db"));
  other.put("o", "x");
  q.put("m", "y");
  std::optional<Job> mine = q.reserve("m"), theirs = other.reserve("o");
  CHECK(mine && theirs);
  if (!mine || !theirs) return;
  std::vector<Job> mixed;
  mixed.push_back(std::move(*mine));
  mixed.push_back(std::move(*theirs));
  CHECK_THROWS(jobqpp::ack_many(mixed), JOBQ_E_INVALID_ARG);
  mixed[0].ack();
  mixed[1].ack();
}

static void test_beanstalk_ops(const char *dir) {
  Queue q(check_path(dir, "ops.db"), R"({"backoff_base_ms": 60000, "backoff_jitter": 0})");
  PutOptions low;
  low.priority = 5;
  std::uint64_t a = q.put("a", "a", low);
  std::uint64_t b = q.put("b", "b");
  std::uint64_t c = q.put("c", "c");

  // reserve_any: the smallest (priority, id) across the queues.
  std::optional<Job> job = q.reserve_any({"a", "b"});
  CHECK(job && job->id() == b && job->queue() == "b");
  if (!job) return;
  // Released with a larger priority: a (5) now comes before it.
  job->release_with_priority(0, 9);
  CHECK_THROWS(job->release_with_priority(0, 1), JOBQ_E_STATE);
  CHECK(q.peek("b", "ready") == std::optional<std::uint64_t>(b));
  std::vector<std::string> names = {"b", "a"};
  job = q.reserve_any(names);
  CHECK(job && job->id() == a);
  if (!job) return;
  // Buried with a small priority, then kicked: first again.
  job->bury_with_priority("later", -1);
  CHECK(q.peek("a", "dead") == std::optional<std::uint64_t>(a));
  CHECK(!q.peek("a", "ready"));
  q.kick_job(a);
  CHECK_THROWS(q.kick_job(a), JOBQ_E_STATE);
  CHECK_THROWS(q.kick_job(a + 1000), JOBQ_E_NOT_FOUND);
  job = q.reserve_any({"a", "b", "c"}, 100);
  CHECK(job && job->id() == a && job->attempt() == 1);
  if (job) job->ack();
  job = q.reserve_any({"b", "c"});
  CHECK(job && job->id() == c);  // priority 0 < b's 9
  if (job) job->ack();
  job = q.reserve_any({"b"});
  CHECK(job && job->id() == b);
  if (job) job->bury_with_priority(nullptr, 0);

  // A scheduled job: peek, kick, deliver.
  PutOptions later;
  later.delay_ms = 600000;
  std::uint64_t d = q.put("c", "d", later);
  CHECK(q.peek("c", "scheduled") == std::optional<std::uint64_t>(d));
  q.kick_job(d);
  CHECK(!q.peek("c", "scheduled"));
  job = q.reserve_any({"c"}, 100);
  CHECK(job && job->id() == d);
  if (job) job->ack();

  // Nothing ready: std::nullopt after the timeout; bad input throws.
  CHECK(!q.reserve_any({"a", "c"}, 20));
  CHECK_THROWS(q.reserve_any(std::vector<std::string>()), JOBQ_E_INVALID_ARG);
  CHECK_THROWS(q.reserve_any({"a", ""}), JOBQ_E_INVALID_ARG);
  std::vector<std::string> too_many(JOBQ_RESERVE_ANY_MAX + 1, "a");
  CHECK_THROWS(q.reserve_any(too_many), JOBQ_E_INVALID_ARG);
  CHECK_THROWS(q.peek("a", "reserved"), JOBQ_E_INVALID_ARG);
  CHECK_THROWS(q.peek("", "ready"), JOBQ_E_INVALID_ARG);
}

static void test_workers(const char *dir) {
  Queue q(check_path(dir, "work.db"), R"({"backoff_base_ms": 1, "backoff_jitter": 0, "max_attempts": 3})");
  std::atomic<int> done{0}, thrown{0}, foreign{0}, buried{0}, max_attempt{0};
  std::atomic<bool> wrong_view{false};

  Worker w = Worker::start(
      q, "tasks",
      [&](const JobView &job) -> jobq_outcome {
        if (job.queue() != "tasks" || job.id() == 0 || job.attempt() == 0) wrong_view = true;
        std::string_view p = job.payload();
        if (p == "throw") {
          int seen = static_cast<int>(job.attempt());
          int prev = max_attempt.load();
          while (prev < seen && !max_attempt.compare_exchange_weak(prev, seen)) {
          }
          thrown++;
          throw std::runtime_error("handler failed");
        }
        if (p == "throw-int") {
          foreign++;
          throw 42;  // not even a std::exception
        }
        if (p == "bury") {
          buried++;
          return static_cast<jobq_outcome>(Outcome::bury);
        }
        done++;
        return JOBQ_DONE;
      },
      jobqpp::WorkerOptions{2});
  CHECK(static_cast<bool>(w) && w.capi() != nullptr);

  q.put_batch("tasks", {"a", "b", "throw", "c", "bury", "throw-int"});
  // Each throwing job is retried until its 3 attempts are used up, then dead.
  CHECK(eventually([&] { return done.load() == 3 && thrown.load() == 3 && foreign.load() == 3 && buried.load() == 1; }));
  CHECK(max_attempt.load() == 3);
  CHECK(!wrong_view.load());
  CHECK(eventually([&] { return contains(q.stats_json(), "\"dead\":3"); }));

  // close() refuses while the worker runs, and the queue stays usable.
  CHECK_THROWS(q.close(), JOBQ_E_BUSY);
  CHECK(static_cast<bool>(q));

  // Worker is move-only; stop() stops once.
  Worker moved = std::move(w);
  CHECK(!w && moved);
  CHECK(moved.stop(-1));
  CHECK(!moved);
  CHECK(moved.stop(-1));  // stopped already: no-op
  CHECK(w.stop());        // moved-from: no-op

  // A void handler (= done) in a scope: the destructor stops the pool, after
  // which the queue closes.
  std::atomic<int> plain{0};
  {
    Worker scoped = Worker::start(q, "plain", [&](const JobView &) { plain++; });
    q.put("plain", "1");
    q.put("plain", "2");
    CHECK(eventually([&] { return plain.load() == 2; }));
  }
  CHECK(q.kick("tasks", 10) == 3);  // the dead ones, back for the next pool
  {
    // Outcome-returning handler; stops and frees with the destructor.
    Worker all_done = Worker::start(q, "tasks", [&](const JobView &) { return Outcome::done; });
    CHECK(eventually([&] { return contains(q.stats_json(), "\"tasks\":{\"ready\":0,\"scheduled\":0,\"reserved\":0,\"dead\":0,\"done\":0,\"paused\":false}"); }));
  }
  q.close();
  CHECK(!q);
}

static int slow_factor() {
  const char *slow = getenv("JOBQ_TEST_SLOW");
  return slow != nullptr && atoi(slow) > 0 ? atoi(slow) : 1;
}

/* Whether the watch's fd is readable within `ms` (0: right now). */
static bool readable(const Watch &w, int ms) {
  struct pollfd p = {w.fd(), POLLIN, 0};
  return poll(&p, 1, ms) == 1 && (p.revents & POLLIN) != 0;
}

static void test_watch(const char *dir) {
  Queue q(check_path(dir, "watch.db"));
  const int must_ms = 5000 * slow_factor();
  const std::int64_t delay = 400 * slow_factor();
  {
    Watch w(q, "mail");
    CHECK(static_cast<bool>(w) && w.capi() != nullptr && w.fd() >= 0);
    // Readable at first, until consumed; nothing scheduled.
    CHECK(readable(w, 0));
    CHECK(!w.consume().has_value());
    CHECK(!readable(w, 0));

    // A put makes it readable; the loop takes the job with reserve(…, 0).
    q.put("mail", "hello");
    CHECK(readable(w, must_ms));
    CHECK(readable(w, 0));  // stays so until consumed
    (void)w.consume();
    CHECK(!readable(w, 0));
    int n = 0;
    while (auto job = q.reserve("mail", 0)) {
      CHECK(job->payload() == "hello");
      job->ack();
      n++;
    }
    CHECK(n == 1);

    // A delayed job: consume says when it is due.
    PutOptions later;
    later.delay_ms = static_cast<std::uint64_t>(delay);
    q.put("mail", "later", later);
    std::optional<std::int64_t> due = w.consume();
    CHECK(due.has_value() && *due > 0 && *due <= delay);

    // Open watches keep the queue open; a Watch is move-only.
    CHECK_THROWS(q.close(), JOBQ_E_BUSY);
    CHECK(static_cast<bool>(q));
    int fd = w.fd();
    Watch moved = std::move(w);
    CHECK(!w && moved && moved.fd() == fd);
    CHECK(w.fd() == -1);
    CHECK_THROWS((void)w.consume(), JOBQ_E_INVALID_ARG);  // an empty Watch
    w.close();                                            // empty: no-op
    moved.close();
    CHECK(!moved && moved.fd() == -1);
    moved.close();  // closed already: no-op

    // Bad input comes back as Error, nothing opened.
    CHECK_THROWS(Watch(q, ""), JOBQ_E_INVALID_ARG);

    // release() hands the handle over; the destructor of `scoped` closes its own.
    Watch scoped(q, "mail");
    ::jobq_watch *raw = Watch(q, "other").release();
    CHECK(raw != nullptr && jobq_watch_fd(raw) >= 0);
    CHECK(jobq_watch_close(raw) == JOBQ_OK);
    CHECK(scoped.fd() >= 0);
  }
  // Every Watch is gone: the queue closes (the delayed job stays stored).
  if (auto job = q.reserve("mail", 0)) job->ack();
  q.close();
  CHECK(!q);
}

// Job::ack_result and Queue::job_info (keep_done_ms).
static void test_results(const char *dir) {
  Queue q(check_path(dir, "results.db"), R"({"keep_done_ms": 600000})");
  std::uint64_t id = q.put("r", "in");
  CHECK(contains(q.job_info(id), "\"state\":\"ready\""));
  if (auto job = q.reserve("r", 0)) {
    CHECK_THROWS(job->ack_result(std::string(JOBQ_RESULT_MAX + 1, 'x')), JOBQ_E_TOO_BIG);
    job->ack_result(std::string("ou\0t", 4));
    CHECK_THROWS(job->ack_result("again"), JOBQ_E_STATE);
  } else {
    CHECK(!"reserved");
  }
  std::string info = q.job_info(id);
  CHECK(contains(info, "\"state\":\"done\""));
  CHECK(contains(info, "\"result_b64\":\"b3UAdA==\""));
  CHECK(contains(info, "\"result_len\":4"));
  CHECK(contains(q.stats_json(), "\"done\":1"));
  CHECK_THROWS(q.job_info(id + 100), JOBQ_E_NOT_FOUND);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  try {
    test_version_and_errors(argv[1]);
    test_queue_and_jobs(argv[1]);
    test_batched_calls(argv[1]);
    test_beanstalk_ops(argv[1]);
    test_workers(argv[1]);
    test_watch(argv[1]);
    test_results(argv[1]);
  } catch (const std::exception &e) {
    fprintf(stderr, "uncaught exception: %s\n", e.what());
    return 1;
  }
  return check_finish("test_cpp_wrapper");
}
