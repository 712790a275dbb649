#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, gcc and make, on
# Debian (run as root, or with sudo available). Already-present tools are skipped.
set -euo pipefail
need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v c++ >/dev/null || need+=(g++)
command -v pkg-config >/dev/null || need+=(pkg-config)
# tests/install.rs: a CMake consumer project, readelf/nm/objcopy/ld for the
# installed libraries, and the system SQLite linked next to libjobq.a.
command -v cmake >/dev/null || need+=(cmake)
command -v objcopy >/dev/null || need+=(binutils)
[ -e /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
# The PostgreSQL tests: a server of their own when none answers
# (tests/support/pg.rs runs initdb/pg_ctl), and libpq for bench/.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ -e /usr/include/postgresql/libpq-fe.h ] || need+=(libpq-dev)
# examples/libevent_worker.c (built by `make` / `make demo`, run by tests/examples.rs).
[ -e /usr/include/event2/event.h ] || need+=(libevent-dev)
# tests/python.rs: the Python bindings (python/) are pip-installed into a venv.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need+=(python3 python3-venv python3-pip)
fi
# tests/beanstalkd_transcripts.rs, tests/beanstalkd_clients.rs, bench/compare-beanstalkd.sh: the real
# beanstalkd to compare jobq-beanstalkd with. (The clients greenstalk and pystalk come from PyPI:
# tests/beanstalkd_clients.rs pip-installs them into a venv, with python3-venv from above.)
command -v beanstalkd >/dev/null || need+=(beanstalkd)
# scripts/abi-check.sh: abidiff.
command -v abidiff >/dev/null || need+=(abigail-tools)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
echo "tools ok: $(valgrind --version), $(c++ --version | head -1), $(cmake --version | head -1), $(ls -d /usr/lib/postgresql/*/bin | head -1), $(python3 --version), $(abidiff --version)"
