"""greenstalk's side of the interop test (tests/beanstalkd_clients.rs).

  interop.py put TUBE BODY...    puts each BODY, prints "ID BODY" per job
  interop.py take TUBE N         reserves and deletes N jobs, prints "ID PRI BODY" per job
"""

import sys

import greenstalk

from conftest import addr


def main():
    cmd, tube = sys.argv[1], sys.argv[2]
    with greenstalk.Client(addr(), use=tube, watch=tube) as c:
        if cmd == "put":
            for body in sys.argv[3:]:
                print(c.put(body), body)
        elif cmd == "take":
            for _ in range(int(sys.argv[3])):
                job = c.reserve(timeout=5)
                pri = c.stats_job(job)["pri"]
                c.delete(job)
                print(job.id, pri, job.body)
        else:
            sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
