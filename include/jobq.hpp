/*
 * jobq.hpp - a header-only C++17 wrapper over the C API in jobq.h.
 *
 * Written by hand (jobq.h is generated; this file is not). Everything here is
 * inline and calls only the functions declared in jobq.h, so it works with
 * libjobq.so and libjobq.a alike and adds nothing to the ABI.
 *
 * The namespace is jobqpp, not jobq: jobq.h declares `typedef struct jobq
 * jobq;` at global scope, and C++ forbids a namespace with the name of a type
 * in the same scope.
 *
 *   jobqpp::Queue q("jobs.db");
 *   q.put("mail", "hello");
 *   if (auto job = q.reserve("mail", 1000)) {
 *     std::cout << job->payload() << "\n";
 *     job->ack();
 *   }                                               // jobq_job_free
 *   for (auto job = q.reserve("mail", 1000); job;) {
 *     send(job->payload());
 *     job = job->ack_and_reserve("mail", 1000);    // ack + next in one call
 *   }
 *   auto batch = q.reserve_many("mail", 16, 1000);  // up to 16 in one transaction
 *   auto any = q.reserve_any({"mail", "sms"}, 1000); // smallest (priority, id) of both
 *   jobqpp::ack_many(batch);                        // per-job statuses
 *   jobqpp::Worker w = jobqpp::Worker::start(q, "mail", [](const jobqpp::JobView& j) {
 *     send(j.payload());                            // a throw here means JOBQ_RETRY
 *     return JOBQ_DONE;
 *   }, jobqpp::WorkerOptions{4});
 *   w.stop();                                       // or let the destructor wait
 *   jobqpp::Watch watch(q, "mail");                 // for an event loop: poll watch.fd()
 *   // ... when watch.fd() is readable or the timer fired:
 *   std::optional<std::int64_t> due_ms = watch.consume();  // arm the timer; nullopt: nothing scheduled
 *   while (auto job = q.reserve("mail", 0)) job->ack();
 *
 * Rules:
 *  - Errors (a status < 0) throw jobqpp::Error, which carries the status and
 *    jobq_last_error()'s message. Non-error outcomes are return values:
 *    JOBQ_TIMEOUT is an empty std::optional from reserve(), JOBQ_DUPLICATE is
 *    the `false` of put_unique().
 *  - Queue, Job, Worker and Watch own their C handle like std::unique_ptr:
 *    move-only, closed/freed/stopped by the destructor. capi() lends the
 *    handle; Queue::release(), Watch::release() and Job::release_capi() give
 *    it up (you then call jobq_close / jobq_watch_close / jobq_job_free
 *    yourself), as in wasmtime's helpers.hh. Job's
 *    release(delay_ms) is jobq_release. Worker has no release(): the pool
 *    calls a C++ object that the Worker owns.
 *  - Destroy (or stop / close) every Worker and Watch before its Queue:
 *    jobq_close refuses with JOBQ_E_BUSY while a worker runs or a watch is
 *    open, and ~Queue() cannot report that (it ignores errors, and the queue
 *    then stays open); call close() to see it.
 *  - Needs C++17 with exceptions enabled.
 *  - No C++ exception crosses into the library: the worker trampoline catches
 *    everything the handler throws and returns JOBQ_RETRY.
 */
#ifndef JOBQ_HPP
#define JOBQ_HPP

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "jobq.h"

// jobq's handles are 64-bit tokens (type tag, generation, slot), carried in
// pointer-typed values: the library builds only for 64-bit targets (its
// crate refuses others with compile_error!), so say it here too, at once.
static_assert(sizeof(void *) == 8, "jobq needs a 64-bit target: its handles are 64-bit tokens");

namespace jobqpp {

/** A failed call: the C status (< 0) and the message of jobq_last_error(). */
class Error : public std::runtime_error {
 public:
  Error(jobq_status status, const std::string &message)
      : std::runtime_error(std::string(::jobq_status_str(status)) + (message.empty() ? "" : ": " + message)),
        status_(status),
        message_(message) {}

  /** Builds the error of the calling thread's last failed jobq call. */
  static Error last(jobq_status status) { return Error(status, ::jobq_last_error()); }

  jobq_status status() const noexcept { return status_; }
  /** "JOBQ_E_STATE", ... (static text). */
  const char *name() const noexcept { return ::jobq_status_str(status_); }
  /** jobq_last_error() at the time of the failure, without the status name. */
  const std::string &message() const noexcept { return message_; }

 private:
  jobq_status status_;
  std::string message_;
};

namespace detail {
/** Throws on an error status; returns non-error outcomes (OK, TIMEOUT, DUPLICATE). */
inline jobq_status check(jobq_status status) {
  if (static_cast<int>(status) < 0) throw Error::last(status);
  return status;
}
struct QueueCloser {
  void operator()(::jobq *q) const noexcept { (void)::jobq_close(q); }
};
struct JobFreer {
  void operator()(::jobq_job *job) const noexcept { ::jobq_job_free(job); }
};
struct StringFreer {
  void operator()(char *s) const noexcept { ::jobq_string_free(s); }
};
struct WatchCloser {
  void operator()(::jobq_watch *w) const noexcept { (void)::jobq_watch_close(w); }
};
}  // namespace detail

/**
 * A NUL-terminated string argument: a const char * or a std::string, never
 * copied. It may be nullptr where the C function takes NULL (fail/bury's
 * reason); elsewhere the C call refuses NULL with JOBQ_E_INVALID_ARG.
 */
class CStr {
 public:
  CStr(const char *s) noexcept : s_(s) {}         // NOLINT: implicit on purpose
  CStr(const std::string &s) noexcept : s_(s.c_str()) {}  // NOLINT
  const char *c_str() const noexcept { return s_; }

 private:
  const char *s_;
};

/** The library's version (jobq_version()); JOBQ_VERSION_STRING is the header's. */
inline const char *version() noexcept { return ::jobq_version(); }
/** The library's version as major * 10000 + minor * 100 + patch. */
inline std::uint32_t version_number() noexcept { return ::jobq_version_number(); }

/** Handler results; a handler may also return a plain jobq_outcome (JOBQ_DONE, ...). */
enum class Outcome : int { done = JOBQ_DONE, retry = JOBQ_RETRY, bury = JOBQ_BURY };

/** Options of one put; the defaults are jobq_put_opts_init's. */
struct PutOptions {
  std::int32_t priority = 0;               ///< smaller runs first
  std::uint64_t delay_ms = 0;              ///< not delivered before now + delay_ms
  std::uint32_t max_attempts = 0;          ///< 0 = the queue file's
  std::uint64_t lease_ms = 0;              ///< 0 = the queue file's
  std::optional<std::string> unique_key;   ///< see put_unique()

  jobq_put_opts to_c() const noexcept {
    jobq_put_opts o;
    jobq_put_opts_init(&o);  // the macro: the size comes from this compile
    o.priority = priority;
    o.delay_ms = delay_ms;
    o.max_attempts = max_attempts;
    o.lease_ms = lease_ms;
    o.unique_key = unique_key ? unique_key->c_str() : nullptr;
    return o;
  }
};

/** Options of a worker pool. */
struct WorkerOptions {
  std::uint32_t concurrency = 1;  ///< handler threads
};

/**
 * A job as a handler sees it: a borrowed const jobq_job *. Valid only during
 * the handler call; the pool finishes and frees the job from the outcome.
 */
class JobView {
 public:
  explicit JobView(const ::jobq_job *job) noexcept : job_(job) {}

  std::uint64_t id() const noexcept { return ::jobq_job_id(job_); }
  /** The queue's name. */
  std::string_view queue() const noexcept {
    const char *q = ::jobq_job_queue(job_);
    return q ? std::string_view(q) : std::string_view();
  }
  /** The payload bytes, valid as long as the job. */
  std::string_view payload() const noexcept {
    std::size_t len = 0;
    const std::uint8_t *p = ::jobq_job_payload(job_, &len);
    return p ? std::string_view(reinterpret_cast<const char *>(p), len) : std::string_view();
  }
  /** 1 on the first delivery. */
  std::uint32_t attempt() const noexcept { return ::jobq_job_attempt(job_); }
  const ::jobq_job *capi() const noexcept { return job_; }

 private:
  const ::jobq_job *job_;
};

/**
 * A delivered job (owns a jobq_job *; jobq_job_free in the destructor). May
 * move between threads, not be used by two at once. Finishing calls throw
 * Error; JOBQ_E_STATE means the lease expired and the job went to someone else.
 */
class Job {
 public:
  /** Takes ownership of a job from jobq_reserve. */
  explicit Job(::jobq_job *job) noexcept : job_(job) {}

  std::uint64_t id() const noexcept { return view().id(); }
  std::string_view queue() const noexcept { return view().queue(); }
  std::string_view payload() const noexcept { return view().payload(); }
  std::uint32_t attempt() const noexcept { return view().attempt(); }
  JobView view() const noexcept { return JobView(job_.get()); }

  /** Done: the job is removed (kept as "done" with keep_done_ms > 0). */
  void ack() { detail::check(::jobq_ack(job_.get())); }
  /**
   * jobq_ack_result: done, with a result (at most JOBQ_RESULT_MAX bytes) that
   * Queue::job_info() shows while the job is kept (config keep_done_ms).
   * Throws Error (JOBQ_E_TOO_BIG: nothing stored, the job stays reserved;
   * JOBQ_E_STATE: this delivery was stale, nothing stored).
   */
  void ack_result(std::string_view result) {
    detail::check(::jobq_ack_result(job_.get(), result.data(), result.size()));
  }
  /**
   * Retry after backoff (or dead when attempts are used up). `reason` is
   * kept as the job's last error; without one (or with nullptr) the library
   * stores what jobq_fail(job, NULL) stores ("failed").
   */
  void fail(CStr reason = nullptr) { detail::check(::jobq_fail(job_.get(), reason.c_str())); }
  /** Give it back unfinished, not counted as a failure. */
  void release(std::uint64_t delay_ms = 0) { detail::check(::jobq_release(job_.get(), delay_ms)); }
  /** jobq_release_priority: release(delay_ms), and the job's priority
   * becomes `priority` (stored with the release). */
  void release_with_priority(std::uint64_t delay_ms, std::int32_t priority) {
    detail::check(::jobq_release_priority(job_.get(), delay_ms, priority));
  }
  /** Extend the lease from now; 0 = the job's lease_ms. */
  void touch(std::uint64_t lease_ms = 0) { detail::check(::jobq_touch(job_.get(), lease_ms)); }
  /** Dead now; `reason` as for fail() (without one: jobq_bury(job, NULL)'s "buried"). */
  void bury(CStr reason = nullptr) { detail::check(::jobq_bury(job_.get(), reason.c_str())); }
  /** jobq_bury_priority: bury(reason), and the job's priority becomes
   * `priority` (a kick brings it back with it). */
  void bury_with_priority(CStr reason, std::int32_t priority) {
    detail::check(::jobq_bury_priority(job_.get(), reason.c_str(), priority));
  }
  /**
   * jobq_ack_reserve: acks this job and leases the next ready job of `queue`
   * (of the same Queue) in one call, waiting up to timeout_ms like
   * Queue::reserve(); std::nullopt when nothing came (the ack is stored all
   * the same). This Job keeps its handle (freed by its destructor); throws
   * Error (JOBQ_E_STATE: this delivery was stale, nothing acked or leased).
   */
  std::optional<Job> ack_and_reserve(CStr queue, std::int64_t timeout_ms = 0) {
    ::jobq_job *next = nullptr;
    if (detail::check(::jobq_ack_reserve(job_.get(), queue.c_str(), timeout_ms, &next)) != JOBQ_OK) {
      return std::nullopt;
    }
    return std::optional<Job>(std::in_place, next);
  }

  ::jobq_job *capi() const noexcept { return job_.get(); }
  /** Gives up ownership: call jobq_job_free yourself. (Not named release():
   * that is jobq_release, giving the job back to the queue.) */
  ::jobq_job *release_capi() noexcept { return job_.release(); }

 private:
  std::unique_ptr<::jobq_job, detail::JobFreer> job_;
};

/**
 * jobq_ack_many: acks all `jobs` (delivered through one Queue) in one
 * transaction. Returns each job's status, in order: JOBQ_OK, or JOBQ_E_STATE
 * for a stale delivery (which changed nothing; the others were acked).
 * Throws Error when the call failed as a whole (e.g. JOBQ_E_INVALID_ARG for
 * jobs of two Queues). The Jobs keep their handles.
 */
inline std::vector<jobq_status> ack_many(const std::vector<Job> &jobs) {
  std::vector<::jobq_job *> raw;
  raw.reserve(jobs.size());
  for (const Job &job : jobs) raw.push_back(job.capi());
  std::vector<jobq_status> statuses(jobs.size(), JOBQ_OK);
  jobq_status st = ::jobq_ack_many(raw.data(), raw.size(), statuses.data());
  // JOBQ_E_STATE is the per-job summary: the statuses say which.
  if (st != JOBQ_E_STATE) detail::check(st);
  return statuses;
}

/**
 * An open queue file (owns a jobq *). Safe to share between threads by
 * reference; moving it is not thread-safe. The destructor closes it, ignoring
 * errors: stop workers first, or call close() to see them.
 */
class Queue {
 public:
  /** jobq_open: `config_json` nullptr (or omitted) = defaults. */
  explicit Queue(CStr path, const char *config_json = nullptr) {
    ::jobq *q = nullptr;
    detail::check(::jobq_open(path.c_str(), config_json, &q));
    q_.reset(q);
  }
  Queue(CStr path, const std::string &config_json) : Queue(path, config_json.c_str()) {}
  /** Takes ownership of a handle from jobq_open. */
  explicit Queue(::jobq *q) noexcept : q_(q) {}

  /** jobq_close; on failure (JOBQ_E_BUSY: workers still run) the queue stays open. */
  void close() {
    if (!q_) return;
    detail::check(::jobq_close(q_.get()));
    (void)q_.release();
  }
  explicit operator bool() const noexcept { return static_cast<bool>(q_); }

  /** Puts one job; returns its id. With opts.unique_key and a live job holding
   * that key, returns the live job's id (use put_unique() to tell). */
  std::uint64_t put(CStr queue, std::string_view payload, const PutOptions &opts = {}) {
    return put_unique_impl(queue, payload.data(), payload.size(), opts).first;
  }
  std::uint64_t put(CStr queue, const void *payload, std::size_t len, const PutOptions &opts = {}) {
    return put_unique_impl(queue, payload, len, opts).first;
  }
  /** Puts a job with a unique key, like std::map::insert: {id, true} when
   * stored, {the live job's id, false} on JOBQ_DUPLICATE. */
  std::pair<std::uint64_t, bool> put_unique(CStr queue, std::string unique_key, std::string_view payload,
                                            PutOptions opts = {}) {
    opts.unique_key = std::move(unique_key);
    return put_unique_impl(queue, payload.data(), payload.size(), opts);
  }
  /** Puts all payloads in one transaction (all or none); returns their ids in order. */
  template <class Payloads>
  std::vector<std::uint64_t> put_batch(CStr queue, const Payloads &payloads, const PutOptions &opts = {}) {
    std::vector<jobq_payload> items;
    for (const auto &p : payloads) {
      std::string_view bytes(p);
      items.push_back(jobq_payload{bytes.data(), bytes.size()});
    }
    std::vector<std::uint64_t> ids(items.size());
    jobq_put_opts o = opts.to_c();
    detail::check(::jobq_put_batch(q_.get(), queue.c_str(), items.data(), items.size(), &o, ids.data()));
    return ids;
  }
  std::vector<std::uint64_t> put_batch(CStr queue, std::initializer_list<std::string_view> payloads,
                                       const PutOptions &opts = {}) {
    return put_batch<std::initializer_list<std::string_view>>(queue, payloads, opts);
  }

  /** The next ready job, waiting up to timeout_ms (0 = don't wait, < 0 =
   * forever); std::nullopt when nothing came (JOBQ_TIMEOUT). */
  std::optional<Job> reserve(CStr queue, std::int64_t timeout_ms = 0) {
    ::jobq_job *job = nullptr;
    if (detail::check(::jobq_reserve(q_.get(), queue.c_str(), timeout_ms, &job)) != JOBQ_OK) return std::nullopt;
    return std::optional<Job>(std::in_place, job);
  }

  /** jobq_reserve_many: up to `max` (1 to JOBQ_RESERVE_MANY_MAX) ready jobs
   * in one transaction, smallest (priority, id) first, waiting up to
   * timeout_ms while none is ready; empty when nothing came (JOBQ_TIMEOUT). */
  std::vector<Job> reserve_many(CStr queue, std::size_t max, std::int64_t timeout_ms = 0) {
    // Slots for every job the call may write; the library refuses max == 0
    // and max > JOBQ_RESERVE_MANY_MAX without writing any.
    std::vector<::jobq_job *> raw(max == 0 ? 1 : max > JOBQ_RESERVE_MANY_MAX ? JOBQ_RESERVE_MANY_MAX : max);
    std::size_t n = 0;
    detail::check(::jobq_reserve_many(q_.get(), queue.c_str(), max, timeout_ms, raw.data(), &n));
    std::vector<Job> jobs;
    jobs.reserve(n);
    for (std::size_t i = 0; i < n; i++) jobs.emplace_back(raw[i]);
    return jobs;
  }

  /** jobq_reserve_any: the ready job with the smallest (priority, id)
   * among `queues` (1 to JOBQ_RESERVE_ANY_MAX names; paused or limited
   * queues are passed over), waiting up to timeout_ms like reserve();
   * std::nullopt when nothing came. Its queue: Job::queue(). */
  std::optional<Job> reserve_any(std::initializer_list<CStr> queues, std::int64_t timeout_ms = 0) {
    std::vector<const char *> names;
    names.reserve(queues.size());
    for (const CStr &q : queues) names.push_back(q.c_str());
    return reserve_any_impl(names, timeout_ms);
  }
  std::optional<Job> reserve_any(const std::vector<std::string> &queues, std::int64_t timeout_ms = 0) {
    std::vector<const char *> names;
    names.reserve(queues.size());
    for (const std::string &q : queues) names.push_back(q.c_str());
    return reserve_any_impl(names, timeout_ms);
  }

  /** jobq_kick_job: a dead or scheduled job -> ready now. Throws Error
   * (JOBQ_E_NOT_FOUND: no such job; JOBQ_E_STATE: ready, reserved or done,
   * or dead with its unique key held by a live job). */
  void kick_job(std::uint64_t id) { detail::check(::jobq_kick_job(q_.get(), id)); }

  /** jobq_peek: the id of the next job of `queue` in `state` ("ready",
   * "scheduled" or "dead"), leasing nothing; std::nullopt when there is
   * none (JOBQ_E_NOT_FOUND). Any other state throws Error (JOBQ_E_INVALID_ARG). */
  std::optional<std::uint64_t> peek(CStr queue, CStr state) {
    std::uint64_t id = 0;
    jobq_status st = ::jobq_peek(q_.get(), queue.c_str(), state.c_str(), &id);
    if (st == JOBQ_E_NOT_FOUND) return std::nullopt;
    detail::check(st);
    return id;
  }

  /** Dead jobs back to ready, oldest first; returns how many. */
  std::uint64_t kick(CStr queue, std::uint64_t max) {
    std::uint64_t kicked = 0;
    detail::check(::jobq_kick(q_.get(), queue.c_str(), max, &kicked));
    return kicked;
  }
  /** Removes a job that is not currently delivered. */
  void cancel(std::uint64_t id) { detail::check(::jobq_cancel(q_.get(), id)); }
  /** jobq_pause: the queue takes puts but delivers nothing, to any process, until resume(). */
  void pause(CStr queue) { detail::check(::jobq_pause(q_.get(), queue.c_str())); }
  /** jobq_resume: a paused queue delivers again; waiting reserves wake. */
  void resume(CStr queue) { detail::check(::jobq_resume(q_.get(), queue.c_str())); }
  /** jobq_queue_config: sets or removes the queue's limits, e.g.
   * R"({"max_reserved": 4, "rate": {"jobs": 10, "per_ms": 1000}})"; null
   * removes a limit, keys not given keep their value. Bad JSON or values
   * throw jobq::Error (JOBQ_E_INVALID_ARG) and store nothing. */
  void config(CStr queue, CStr json) { detail::check(::jobq_queue_config(q_.get(), queue.c_str(), json.c_str())); }
  /** jobq_schedule: makes (or replaces: names are global to the store) schedule `name`, a job
   *  with `payload` put into `queue` at every slot of `spec` (cron in UTC, "@daily", "@every 30s"). */
  void schedule(CStr queue, CStr name, CStr spec, std::string_view payload = {}, const PutOptions &opts = {}) {
    jobq_put_opts o = opts.to_c();
    detail::check(::jobq_schedule(q_.get(), queue.c_str(), name.c_str(), spec.c_str(), payload.data(),
                                  payload.size(), &o));
  }
  /** jobq_unschedule: no further jobs for `name` (a name without a schedule: no-op). */
  void unschedule(CStr name) { detail::check(::jobq_unschedule(q_.get(), name.c_str())); }
  /**
   * jobq_job_info: job `id` as a JSON object (state, attempts, last_error,
   * result / result_b64, times; see jobq.h). Throws Error (JOBQ_E_NOT_FOUND:
   * no such job, or acked and not kept, or past its keep time).
   */
  std::string job_info(std::uint64_t id) {
    char *json = nullptr;
    detail::check(::jobq_job_info(q_.get(), id, &json));
    std::unique_ptr<char, detail::StringFreer> owned(json);
    return std::string(owned ? owned.get() : "");
  }
  /** {"queues": {"<name>": {"ready": n, "scheduled": n, "reserved": n, "dead": n, "done": n, "paused": false}}},
   *  and "schedules": [...] while the store has any (see jobq_stats_json). */
  std::string stats_json() {
    char *json = nullptr;
    detail::check(::jobq_stats_json(q_.get(), &json));
    std::unique_ptr<char, detail::StringFreer> owned(json);
    return std::string(owned ? owned.get() : "");
  }

  ::jobq *capi() const noexcept { return q_.get(); }
  /** Gives up ownership: call jobq_close yourself. */
  ::jobq *release() noexcept { return q_.release(); }

 private:
  std::pair<std::uint64_t, bool> put_unique_impl(CStr queue, const void *payload, std::size_t len,
                                                 const PutOptions &opts) {
    jobq_put_opts o = opts.to_c();
    std::uint64_t id = 0;
    jobq_status st = detail::check(::jobq_put(q_.get(), queue.c_str(), payload, len, &o, &id));
    return {id, st != JOBQ_DUPLICATE};
  }

  std::optional<Job> reserve_any_impl(const std::vector<const char *> &names, std::int64_t timeout_ms) {
    ::jobq_job *job = nullptr;
    const char *const *list = names.empty() ? nullptr : names.data();
    jobq_status st = ::jobq_reserve_any(q_.get(), list, names.size(), timeout_ms, &job);
    if (detail::check(st) != JOBQ_OK) return std::nullopt;
    return std::optional<Job>(std::in_place, job);
  }

  std::unique_ptr<::jobq, detail::QueueCloser> q_;
};

/**
 * A watch on one queue, for event loops (owns a jobq_watch *;
 * jobq_watch_close in the destructor, which ignores errors). fd() turns
 * readable when the queue may have a ready job (a put, release, kick, resume
 * or retry from any process; wakeups may be spurious) and stays readable
 * until consume(). The loop: wait for fd() or the timer, consume() (arm the
 * timer with what it returns), then Queue::reserve(queue, 0) until it
 * returns std::nullopt. It starts readable. Destroy or close() it before its
 * Queue (JOBQ_E_BUSY otherwise).
 */
class Watch {
 public:
  Watch() noexcept = default;
  /** jobq_watch_open on `queue` of `queue_file`. */
  Watch(Queue &queue_file, CStr queue) {
    ::jobq_watch *w = nullptr;
    detail::check(::jobq_watch_open(queue_file.capi(), queue.c_str(), &w));
    w_.reset(w);
  }
  /** Takes ownership of a handle from jobq_watch_open. */
  explicit Watch(::jobq_watch *w) noexcept : w_(w) {}

  /** The fd to wait on for readability (POLLIN, EPOLLIN, EV_READ): owned by
   * the watch, never read or close it. -1 for an empty (moved-from, closed) Watch. */
  int fd() const noexcept { return w_ ? ::jobq_watch_fd(w_.get()) : -1; }
  /** jobq_watch_consume: clears the readiness, and returns the milliseconds
   * until the queue's next scheduled job (delay, backoff) or lease expiry is
   * due (0: due now), std::nullopt if there is none. */
  std::optional<std::int64_t> consume() {
    std::int64_t due = -1;
    detail::check(::jobq_watch_consume(w_.get(), &due));
    if (due < 0) return std::nullopt;
    return due;
  }
  /** jobq_watch_close (take fd() out of your event loop first); no-op when empty. */
  void close() {
    if (!w_) return;
    ::jobq_watch *w = w_.release();
    detail::check(::jobq_watch_close(w));
  }
  explicit operator bool() const noexcept { return static_cast<bool>(w_); }

  ::jobq_watch *capi() const noexcept { return w_.get(); }
  /** Gives up ownership: call jobq_watch_close yourself. */
  ::jobq_watch *release() noexcept { return w_.release(); }

 private:
  std::unique_ptr<::jobq_watch, detail::WatchCloser> w_;
};

/**
 * A pool of threads running a C++ callable (owns a jobq_worker *). The
 * callable is invoked as `f(const JobView &)` on up to `concurrency` pool
 * threads at once, and returns a jobq_outcome (JOBQ_DONE, ...), an Outcome,
 * or nothing (= done). Anything it throws is caught and counts as
 * JOBQ_RETRY. It must not finish the job itself nor stop its own pool.
 *
 * The destructor stops the pool and waits for running handlers (stop(-1)).
 * There is no release(): the C handle cannot outlive the callable it calls.
 */
class Worker {
 public:
  Worker() noexcept = default;

  template <class F>
  static Worker start(Queue &queue_file, CStr queue, F &&handler, WorkerOptions opts = {}) {
    using Fn = std::decay_t<F>;
    static_assert(std::is_invocable_v<Fn &, const JobView &>, "the handler is called as f(const jobqpp::JobView &)");
    auto state = std::make_unique<State<Fn>>(std::forward<F>(handler));
    jobq_worker_opts o;
    jobq_worker_opts_init(&o);
    o.concurrency = opts.concurrency;
    ::jobq_worker *w = nullptr;
    detail::check(::jobq_worker_start(queue_file.capi(), queue.c_str(), &o, &State<Fn>::call, state.get(), &w));
    Worker worker;
    worker.state_ = std::move(state);
    worker.w_ = w;
    return worker;
  }

  Worker(Worker &&other) noexcept : state_(std::move(other.state_)), w_(std::exchange(other.w_, nullptr)) {}
  Worker &operator=(Worker &&other) noexcept {
    if (this != &other) {
      stop_noexcept();
      state_ = std::move(other.state_);
      w_ = std::exchange(other.w_, nullptr);
    }
    return *this;
  }
  Worker(const Worker &) = delete;
  Worker &operator=(const Worker &) = delete;
  ~Worker() { stop_noexcept(); }

  /**
   * Stops taking jobs and waits up to timeout_ms (< 0 = forever) for running
   * handlers. true: every handler returned and its outcome is stored. false
   * (JOBQ_TIMEOUT): handlers still run; their jobs come back when their leases
   * expire, and the callable is deliberately leaked because they still use
   * it. Either way the pool is gone afterwards; stop() on a stopped Worker
   * returns true.
   */
  bool stop(std::int64_t timeout_ms = -1) {
    if (!w_) return true;
    jobq_status st = ::jobq_worker_stop(std::exchange(w_, nullptr), timeout_ms);
    if (st == JOBQ_OK) {
      state_.reset();
      return true;
    }
    // Handlers may still run (timeout) or we cannot tell (error): they may
    // still call the callable, so it must outlive them.
    (void)state_.release();
    if (st == JOBQ_TIMEOUT) return false;
    throw Error::last(st);
  }
  explicit operator bool() const noexcept { return w_ != nullptr; }
  ::jobq_worker *capi() const noexcept { return w_; }

 private:
  struct StateBase {
    virtual ~StateBase() = default;
  };
  template <class Fn>
  struct State final : StateBase {
    template <class G>
    explicit State(G &&g) : fn(std::forward<G>(g)) {}
    Fn fn;

    // The C trampoline: nothing thrown by the callable reaches Rust frames.
    static jobq_outcome call(const ::jobq_job *job, void *user_data) noexcept {
      try {
        auto &fn = static_cast<State *>(user_data)->fn;
        using R = std::invoke_result_t<Fn &, const JobView &>;
        if constexpr (std::is_void_v<R>) {
          fn(JobView(job));
          return JOBQ_DONE;
        } else {
          // jobq_outcome, Outcome, or anything else convertible to int; a
          // value other than the three outcomes is a retry in the library.
          return static_cast<jobq_outcome>(fn(JobView(job)));
        }
      } catch (...) {
        return JOBQ_RETRY;
      }
    }
  };

  void stop_noexcept() noexcept {
    try {
      (void)stop(-1);
    } catch (...) {
      // A destructor cannot report it; the pool is gone either way.
    }
  }

  std::unique_ptr<StateBase> state_;
  ::jobq_worker *w_ = nullptr;
};

}  // namespace jobqpp

#endif /* JOBQ_HPP */
