# Writes the hand-made seeds fuzz/corpus/c_api/seed-hand-*: small programs of
# jobq C API calls in the input encoding of fuzz_targets/c_api.rs (arbitrary
# 1.5's Unstructured: a choice in 0..=k takes one byte, value % (k+1); a range
# of one value takes none). It mirrors the decoder's state only as far as
# these programs need; check a changed seed with scripts/fuzz.sh --repro FILE.
#   python3 fuzz/make_seeds.py [OUT_DIR (default fuzz/corpus/c_api)]
import os, sys
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), 'corpus', 'c_api')
class P:
    def __init__(s): s.b = bytearray(); s.open = 0; s.put_queues = set(); s.live_jobs = 0
    def byte(s, v): s.b.append(v & 0xff); return s
    def idx(s, n, i):          # choose_index(n)
        if n > 1: s.byte(i)
    def q(s, i=0):             # pick_queue: an open handle
        s.byte(0); s.idx(s.open, i)
    def name(s, n):            # World::gen_name: "a" / "b"
        if s.put_queues:
            s.byte(1)          # ratio(1,2) false: the fixed pool
        s.byte({'a': 0, 'b': 7}[n])
    def payload(s, data):      # fuzz_bytes(32)
        s.byte(0); s.byte(len(data)); s.b += data
    def no_opts(s): s.byte(0)  # ratio(1,3) true: NULL
    def key_opts(s, key):      # struct of the right size, key k1/k2
        s.byte(1)              # ratio(1,3) false
        s.byte(9)              # size: PUT_OPTS_SIZE
        s.byte(1)              # priority: ratio(1,2) false
        s.byte(0)              # delay 0
        s.byte(0)              # max_attempts 0
        s.byte(0)              # lease 0
        s.byte({'k1': 6, 'k2': 7}[key])
    def open_(s, lease_idx=5, jitter=0, payload_cap=None, keep_idx=None):
        s.byte(0)              # op open
        s.byte(0)              # path: this input's file
        s.byte(0)              # config: generated
        s.byte(lease_idx)      # lease [1,5,50,200,2000,30000]
        s.byte(1)              # durability normal
        s.byte(3)              # max_attempts 4
        s.byte(0); s.byte(0)   # backoff base/max 0
        s.byte(jitter)
        if payload_cap is None: s.byte(1)
        else: s.byte(0); s.byte(payload_cap >> 8); s.byte(payload_cap & 0xff)
        if keep_idx is None: s.byte(1)   # no keep_done_ms
        else: s.byte(0); s.byte(keep_idx)  # keep_done_ms [1, 3600000]
        s.byte(1)              # out not NULL
        s.open += 1
    def put(s, n, data, key=None, qi=0):
        s.byte(3); s.q(qi); s.name(n); s.payload(data)
        if key: s.key_opts(key)
        else: s.no_opts()
        s.byte(1)              # out_id not NULL
        s.put_queues.add(n)
    def batch(s, n, items):
        s.byte(6); s.q(); s.name(n); s.byte(len(items))
        for it in items: s.payload(it)
        s.byte(3)              # the real array
        s.no_opts(); s.byte(1)
        if items: s.put_queues.add(n)
    def reserve(s, n, qi=0):
        s.byte(7); s.q(qi); s.name(n); s.byte(1); s.live_jobs += 1
    def finish(s, which, ms=0, live_index=None):
        s.byte(9)
        s.byte(0)              # a live unfinished job
        s.idx(s.live_jobs, s.live_jobs - 1 if live_index is None else live_index)
        s.byte(which)          # ack fail release touch bury
        s.byte(2)              # reason "reason"
        if ms: s.byte(5); s.byte(ms)
        else: s.byte(0)
        if which != 3: s.live_jobs -= 1
    def free_newest(s, jobs_total):
        s.byte(11); s.byte(6); s.byte(0)   # pick_job 6..10 any; ratio(2,3) newest; offset 0
    def accessors(s): s.byte(12); s.byte(0); s.idx(s.live_jobs, s.live_jobs - 1)
    def kick(s, n): s.byte(13); s.q(); s.name(n); s.byte(3); s.byte(3); s.byte(1)  # max 3? (2..=3 -> 1..=5)
    def cancel_known(s, i=0): s.byte(14); s.q(); s.byte(4); s.byte(i)
    def stats(s): s.byte(15); s.q(); s.byte(1)
    def string_free_live(s): s.byte(16); s.byte(0)
    def string_double_free(s): s.byte(16); s.byte(2)
    def string_foreign(s): s.byte(16); s.byte(4)
    def worker_start(s, n, conc, outcomes):
        s.byte(17); s.byte(1)  # start
        s.q(); s.name(n)
        s.byte(5); s.byte(conc - 1)
        s.byte(1); s.byte(1)   # handler, out
        s.byte(len(outcomes) - 1)
        for o in outcomes: s.byte([0, 0, 1, 2, 7, -1, 'min'].index(o) if o != 'min' else 6)
    def worker_stop(s, i=0, n=1): s.byte(17); s.byte(0); s.byte(0); s.idx(n, i)
    def close(s, qi=0): s.byte(2); s.q(qi); s.open -= 1
    def close_stale(s): s.byte(2); s.byte(8); s.byte(0)
    def sleep(s, ms): s.byte(19); s.byte(ms)
    def misc(s, k, *a):
        s.byte(18); s.byte(k)
        for x in a: s.byte(x)

    # ---- the newer calls (opcodes 20..=29)
    def qconfig_max_reserved(s, n, v):   # {"max_reserved":v}, v in 1..=3
        s.byte(20); s.q(); s.name(n); s.byte(0); s.byte(0); s.byte(2); s.byte(v - 1); s.byte(1)
    def qconfig_rate(s, n):              # {"rate":{"jobs":1,"per_ms":3600000}}
        s.byte(20); s.q(); s.name(n); s.byte(0); s.byte(2); s.byte(0); s.byte(1); s.byte(0); s.byte(3)
    def qconfig_bad(s, n, i):            # BAD[i]
        s.byte(20); s.q(); s.name(n); s.byte(4); s.byte(i)
    def pause(s, n, resume=False):
        s.byte(25); s.q(); s.name(n); s.byte(1 if resume else 0)
    def schedule(s, n, sname_byte, spec_i, data):  # spec VALID[spec_i] (not the last two)
        s.byte(21); s.q(); s.name(n); s.byte(sname_byte); s.byte(0); s.byte(1); s.byte(spec_i)
        s.payload(data); s.no_opts(); s.put_queues.add(n)
    def schedule_bad(s, n, spec_i):      # spec INVALID[spec_i], name s1
        s.byte(21); s.q(); s.name(n); s.byte(0); s.byte(4); s.byte(spec_i); s.payload(b''); s.no_opts()
    def unschedule(s, sname_byte): s.byte(22); s.q(); s.byte(sname_byte)
    def ack_result(s, result_choice, over=0):  # gen_result choice (3: {"ok":true}, 6: 64 KiB + over)
        s.byte(23); s.byte(0); s.idx(s.live_jobs, s.live_jobs - 1); s.byte(result_choice)
        if result_choice == 6: s.byte(over); s.byte(0x41)
        if not over: s.live_jobs -= 1   # too big: the job stays reserved
    def job_info(s, n_ids, i=0): s.byte(24); s.q(); s.byte(4); s.idx(n_ids, i); s.byte(1)
    def reserve_many(s, n, k):           # max k in 1..=4
        s.byte(26); s.q(); s.name(n); s.byte(4); s.byte(k - 1); s.byte(1); s.byte(1); s.live_jobs += k
    def ack_many(s, live_indexes):       # the live, unfinished jobs at these indexes
        s.byte(27); s.byte(len(live_indexes))
        for i in live_indexes: s.byte(0); s.idx(s.live_jobs, i)
        s.byte(3); s.byte(1); s.live_jobs -= len(live_indexes)
    def ack_reserve(s, n):               # acks the newest live job, reserves the next of n
        s.byte(28); s.byte(0); s.idx(s.live_jobs, s.live_jobs - 1); s.name(n); s.byte(1)
    def watch_open(s, n): s.byte(29); s.byte(0); s.q(); s.name(n); s.byte(1)
    def watch_fd(s): s.byte(29); s.byte(1); s.byte(0)
    def watch_consume(s): s.byte(29); s.byte(2); s.byte(0); s.byte(1)
    def watch_close(s): s.byte(29); s.byte(3); s.byte(0)

    # ---- the several-queues calls (opcodes 30..=34)
    NAME_RAW = {'a': 0, 'b': 7, 'NULL': 12, '': 13, 'bad-utf8': 14}
    def name_any(s, n):        # World::gen_name with gen_name's other choices
        if s.put_queues: s.byte(1)
        s.byte(s.NAME_RAW[n])
    def job_newest(s, n_jobs): # pick_job 6..=10: the newest handle, finished or not
        s.byte(6); s.byte(0)
        if n_jobs > 1: s.byte(0)
    def priority(s, p):        # gen_priority
        fixed = {0: 0, -5: 1, 7: 2, -2**31: 3, 2**31 - 1: 4}
        if p in fixed: s.byte(fixed[p])
        else: s.byte(5); s.b += (p & 0xffffffff).to_bytes(4, 'little')
    def reserve_any(s, names, delivers=True):  # the names as made
        s.byte(30); s.q(); s.byte(len(names))
        for n in names: s.name_any(n)
        s.byte(6); s.byte(1)
        if delivers: s.live_jobs += 1
    def reserve_any_null(s, n):          # queues NULL, n in 1..=3
        s.byte(30); s.q(); s.byte(0); s.byte(0); s.byte(n - 1); s.byte(1)
    def reserve_any_n0(s):               # a real array, n = 0
        s.byte(30); s.q(); s.byte(0); s.byte(3); s.byte(1)
    def reserve_any_max(s, extra, fill, delivers=False):  # 64 (+extra) names: fill 0 a/b, 1 q<i>, 2 long
        s.byte(30); s.q(); s.byte(0); s.byte(4); s.byte(extra); s.byte(fill); s.byte(1)
        if delivers: s.live_jobs += 1
    def release_priority(s, p, ms=0, live_index=None):  # a live unfinished job
        s.byte(31); s.byte(0); s.idx(s.live_jobs, s.live_jobs - 1 if live_index is None else live_index)
        if ms: s.byte(5); s.byte(ms - 1)
        else: s.byte(0)
        s.priority(p); s.live_jobs -= 1
    def release_priority_stale(s, n_jobs, p):  # the newest handle, already finished
        s.byte(31); s.job_newest(n_jobs); s.byte(0); s.priority(p)
    def bury_priority(s, p, live_index=None):
        s.byte(32); s.byte(0); s.idx(s.live_jobs, s.live_jobs - 1 if live_index is None else live_index)
        s.byte(2); s.priority(p); s.live_jobs -= 1
    def bury_priority_stale(s, n_jobs, p, bad_reason=False):
        s.byte(32); s.job_newest(n_jobs); s.byte(3 if bad_reason else 2); s.priority(p)
    def kick_job(s, n_ids, i):           # the i-th of the n_ids ids put, in order
        s.byte(33); s.q(); s.byte(4); s.idx(n_ids, i)
    def kick_job_id(s, which):           # 0: id 0, 1: u64::MAX, 2: largest id + 1
        s.byte(33); s.q(); s.byte(which)
    def kick_job_stale_handle(s):        # a closed handle: JOBQ_E_HANDLE
        s.byte(33); s.byte(8); s.byte(4); s.byte(0)
    PEEK = {'ready': (0, 0), 'scheduled': (0, 1), 'dead': (0, 2), 'reserved': (6, 0), 'done': (6, 1),
            '': (6, 2), 'READY': (6, 3), 'ready\xff': (6, 6)}
    def peek(s, n, state, out_null=False):
        s.byte(34); s.q(); s.name_any(n)
        if state is None: s.byte(8)
        else: c, i = s.PEEK[state]; s.byte(c); s.byte(i)
        s.byte(0 if out_null else 1)

def save(name, p):
    open(os.path.join(out, 'seed-hand-' + name), 'wb').write(bytes(p.b))

p = P(); p.open_(); p.put('a', b'hello'); p.reserve('a'); p.accessors(); p.finish(0); p.stats(); p.string_free_live(); p.close()
save('lifecycle', p)

p = P(); p.open_()
for i in range(4): p.put('a', bytes([65 + i]) * 3)
p.reserve('a'); p.finish(1); p.reserve('a'); p.finish(2, ms=5); p.reserve('a'); p.finish(3, ms=9); p.finish(0)
p.reserve('a'); p.finish(4); p.kick('a'); p.stats(); p.reserve('a'); p.finish(0); p.stats(); p.string_double_free(); p.string_foreign()
save('finishes', p)

p = P(); p.open_(lease_idx=3)
for i in range(3): p.put('a', b'w%d' % i)
p.worker_start('a', 2, [0, 1, 2]); p.put('a', b'late'); p.sleep(3); p.close(); p.open += 1; p.stats(); p.worker_stop(); p.close()
save('workers', p)

p = P(); p.open_(); p.put('a', b'x'); p.reserve('a'); p.finish(0)
p.byte(9); p.byte(6); p.byte(0); p.byte(0); p.byte(0); p.byte(0)  # ack the finished handle again: STATE
p.byte(11); p.byte(6); p.byte(0)                                     # free it
p.byte(9); p.byte(6); p.byte(0); p.byte(0); p.byte(0); p.byte(0)  # ack the freed handle: HANDLE
p.close(); p.open += 1; p.byte(3); p.byte(8); p.byte(0); p.name('a'); p.payload(b'y'); p.no_opts(); p.byte(1)
save('stale-handles', p)

p = P(); p.open_(payload_cap=200); p.put('a', b'u', key='k1'); p.put('a', b'v', key='k1'); p.put('b', b'w', key='k1')
p.batch('b', [b'1', b'22', b'333']); p.batch('a', []); p.reserve('b'); p.finish(0); p.put('a', b'\0' * 32); p.stats()
save('unique-batch', p)

p = P(); p.open_(lease_idx=0); p.put('a', b'lease'); p.reserve('a'); p.sleep(3); p.reserve('a'); p.finish(0, live_index=0); p.finish(0)
p.cancel_known(0); p.stats()
save('lease-expiry', p)

p = P(); p.open_(); p.open_(lease_idx=2); p.put('a', b'1', qi=0); p.put('a', b'2', qi=1); p.reserve('a', qi=1); p.reserve('a', qi=0)
p.close(qi=0); p.finish(0); p.finish(1); p.stats(); p.misc(0, 1, 3); p.misc(1); p.misc(2, 1, 40); p.misc(3, 1, 6)
save('two-handles', p)

p = P(); p.open_()
for i in range(3): p.put('a', b'L%d' % i)
p.qconfig_max_reserved('a', 1); p.reserve('a'); p.reserve('a'); p.live_jobs -= 1; p.stats();  # held back: TIMEOUT
p.qconfig_rate('b'); p.qconfig_bad('a', 9)
p.pause('a'); p.stats(); p.pause('a', resume=True); p.finish(0, live_index=0); p.stats()
save('limits-pause', p)

p = P(); p.open_(); p.put('a', b'z'); p.schedule('a', 0, 0, b'tick'); p.schedule('b', 4, 2, b''); p.stats()
p.schedule_bad('a', 3); p.schedule_bad('a', 14); p.unschedule(6); p.unschedule(0); p.stats()
save('schedules', p)

p = P(); p.open_(keep_idx=1); p.put('a', b'x'); p.put('a', b'y'); p.reserve('a'); p.ack_result(3); p.job_info(2, 0)
p.reserve('a'); p.ack_result(6, over=1); p.ack_result(6); p.job_info(2, 1); p.stats(); p.string_free_live()
save('results', p)

p = P(); p.open_(); p.batch('a', [b'1', b'2', b'3']); p.reserve_many('a', 3); p.ack_many([0, 1, 2])
p.put('a', b'4'); p.put('a', b'5'); p.reserve('a'); p.ack_reserve('a'); p.stats()
save('many', p)

p = P(); p.open_(); p.watch_open('a'); p.put('a', b'w'); p.watch_fd(); p.watch_consume()
p.byte(2); p.q()   # close while the watch is open: JOBQ_E_BUSY
p.watch_close(); p.close()
save('watch', p)

p = P(); p.open_(); p.put('a', b'A1'); p.put('b', b'B1'); p.put('b', b'B2')
p.reserve_any(['a', 'b'])            # A1: the smallest (priority, id) of both
p.reserve_any_n0(); p.reserve_any_null(2); p.reserve_any(['a', 'NULL'], False); p.reserve_any(['bad-utf8', 'b'], False)
p.reserve_any(['b', ''], False); p.reserve_any_max(1, 1)   # 65 names: JOBQ_E_INVALID_ARG
p.reserve_any_max(0, 0, delivers=True)                       # 64 names, a and b: B1
p.pause('b'); p.reserve_any(['b'], False); p.reserve_any(['a', 'b', 'b'], False)  # paused, empty: TIMEOUT
p.pause('b', resume=True); p.reserve_any(['b', 'a'])         # B2
p.reserve_any_max(0, 2, delivers=False); p.stats(); p.ack_many([0, 1, 2]); p.stats()
save('reserve-any', p)

p = P(); p.open_()
for i in range(3): p.put('a', b'p%d' % i)   # ids 1..3, priority 0
p.reserve('a'); p.release_priority(7)        # job 1: ready again, priority 7
p.release_priority_stale(1, -5)              # the same delivery again: JOBQ_E_STATE, priority kept
p.peek('a', 'ready'); p.reserve('a')         # job 2 (0 < 7)
p.bury_priority(-5); p.bury_priority_stale(2, 3, bad_reason=True)
p.peek('a', 'dead'); p.kick_job(3, 1)        # job 2: dead -> ready, priority -5
p.peek('a', 'ready'); p.kick_job(3, 1)       # ready: JOBQ_E_STATE
p.reserve('a'); p.release_priority(-2**31, ms=20)   # scheduled, the smallest priority
p.peek('a', 'scheduled'); p.kick_job(3, 1)   # scheduled -> ready now
p.peek('a', 'reserved'); p.peek('a', None); p.peek('a', 'ready\xff'); p.peek('b', 'dead'); p.peek('a', 'ready', out_null=True)
p.reserve('a'); p.finish(0); p.kick_job(3, 1)   # acked: JOBQ_E_NOT_FOUND
p.kick_job_id(0); p.kick_job_id(1); p.kick_job_id(2); p.job_info(3, 0); p.job_info(3, 1); p.stats()
p.close(); p.open += 1; p.kick_job_stale_handle()
save('priorities', p)
