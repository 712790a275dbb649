# Builds the library (cargo) and the C examples against it, and runs the
# demo. `make demo` is the README's first command.
#
#   make            build the release library and the C examples
#   make demo       ... and run a producer and a worker pool on a local file
#   make epoll-demo ... and run a producer and the epoll worker (two queues, a retry by timer)
#   make plugin-demo  load/unload the library with dlopen three times (examples/plugin_host.c)
#   make install    install like a C library (release build; see "Install" below)
#   make uninstall  remove what `make install` put there
#   make clean

CARGO   ?= cargo
CC      ?= cc
CFLAGS  ?= -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror
LIBDIR  := target/release
BUILD   := build
EXAMPLES := $(BUILD)/producer $(BUILD)/worker $(BUILD)/epoll_worker $(BUILD)/libevent_worker $(BUILD)/watch_latency
# examples/libevent_worker.c needs libevent 2 (Debian: libevent-dev, which
# scripts/install-deps.sh installs).
LIBEVENT_LIBS ?= -levent

.PHONY: all lib demo epoll-demo plugin-demo clean install uninstall install-check native-static-libs
all: $(EXAMPLES)

lib:
	$(CARGO) build --release --lib

$(LIBDIR)/libjobq.so $(LIBDIR)/libjobq.a: lib

# Linked by full path with an rpath, so the demo runs without installing.
$(BUILD)/%: examples/%.c include/jobq.h lib
	@mkdir -p $(BUILD)
	@ln -sf libjobq.so $(LIBDIR)/libjobq.so.0
	$(CC) $(CFLAGS) -D_GNU_SOURCE -Iinclude $< -o $@ $(CURDIR)/$(LIBDIR)/libjobq.so \
	    -Wl,-rpath,$(CURDIR)/$(LIBDIR) -lpthread

# The same, with libevent; without its headers, say how to get them.
$(BUILD)/libevent_worker: examples/libevent_worker.c include/jobq.h lib
	@echo '#include <event2/event.h>' | $(CC) $(CFLAGS) -E -x c - >/dev/null 2>&1 || { \
	    echo "error: $@ needs libevent 2 (<event2/event.h> not found): run scripts/install-deps.sh" \
	         "(on Debian it installs libevent-dev), then make again" >&2; exit 1; }
	@mkdir -p $(BUILD)
	@ln -sf libjobq.so $(LIBDIR)/libjobq.so.0
	$(CC) $(CFLAGS) -D_GNU_SOURCE -Iinclude $< -o $@ $(CURDIR)/$(LIBDIR)/libjobq.so \
	    -Wl,-rpath,$(CURDIR)/$(LIBDIR) $(LIBEVENT_LIBS) -lpthread

# Short retry delays and 3 attempts, so the demo shows a retry and a dead job.
demo: export JOBQ_CONFIG = {"backoff_base_ms": 200, "max_attempts": 3}
demo: $(EXAMPLES)
	@rm -f $(BUILD)/demo.db $(BUILD)/demo.db-wal $(BUILD)/demo.db-shm
	@echo "== producer: 8 jobs into queue 'emails' of $(BUILD)/demo.db"
	$(BUILD)/producer $(BUILD)/demo.db emails "welcome alice" "welcome bob" "invoice 1001" \
	    "invoice 1002" "fail: smtp down" "reset password carol" "poison: bad address" "digest weekly"
	@echo "== worker: 4 threads until the queue is quiet"
	$(BUILD)/worker $(BUILD)/demo.db emails 4

# One thread, two queues, no pool: epoll on a watch per queue and a timerfd
# (the retry of "fail: smtp down" comes back by the timer, 200 and 400 ms on).
epoll-demo: export JOBQ_CONFIG = {"backoff_base_ms": 200, "backoff_jitter": 0, "max_attempts": 3}
epoll-demo: $(EXAMPLES)
	@rm -f $(BUILD)/epoll-demo.db $(BUILD)/epoll-demo.db-wal $(BUILD)/epoll-demo.db-shm
	@echo "== producer: jobs into queues 'emails' and 'reports' of $(BUILD)/epoll-demo.db"
	$(BUILD)/producer $(BUILD)/epoll-demo.db emails "welcome alice" "fail: smtp down" "invoice 1001"
	$(BUILD)/producer $(BUILD)/epoll-demo.db reports "daily" "weekly"
	@echo "== epoll worker: both queues until one second without a job"
	$(BUILD)/epoll_worker --idle-exit 1000 $(BUILD)/epoll-demo.db emails reports

# Built without linking jobq: it dlopens the library at run time.
$(BUILD)/plugin_host: examples/plugin_host.c include/jobq.h
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -D_GNU_SOURCE -Iinclude $< -o $@ -ldl -lpthread

plugin-demo: $(BUILD)/plugin_host lib
	$(BUILD)/plugin_host $(CURDIR)/$(LIBDIR)/libjobq.so

clean:
	rm -rf $(BUILD)

# ---------------------------------------------------------------------------
# Install
#
#   make install PREFIX=/usr/local [DESTDIR=/staging] [libdir=...] [includedir=...]
#
# installs
#   $(libdir)/libjobq.so.0.<minor>.<patch>   the shared library, soname libjobq.so.0
#   $(libdir)/libjobq.so.0, libjobq.so       symlinks
#   $(libdir)/libjobq.a                      one pre-linked object: only jobq_* global
#   $(includedir)/jobq.h, jobq.hpp           the C header and the C++17 wrapper
#   $(libdir)/pkgconfig/jobq.pc              pkg-config
#   $(libdir)/cmake/jobq/jobqConfig*.cmake   find_package(jobq) -> jobq::jobq
#   $(datadir)/jobq/jobq.supp                valgrind suppressions (docs/valgrind.md)
#
# It builds the release libraries with cargo first, unless you hand it
# prebuilt ones (the tests install the test profile's libraries this way):
#   make install PREFIX=/tmp/p JOBQ_SO=path/to/libjobq.so JOBQ_A=path/to/libjobq.a
PREFIX     ?= /usr/local
libdir     ?= $(PREFIX)/lib
includedir ?= $(PREFIX)/include
pkgconfigdir ?= $(libdir)/pkgconfig
cmakedir   ?= $(libdir)/cmake/jobq
datadir    ?= $(PREFIX)/share
# Scratch space for the pre-linked static library.
STAGE      ?= $(BUILD)/install
INSTALL    ?= install
LD         ?= ld
NM         ?= nm
OBJCOPY    ?= objcopy
AR         ?= ar

# The package version is Cargo.toml's; the soname's number changes only on an
# ABI break (it is set by build.rs: keep the two in step).
VERSION       = $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
version_word  = $(word $(1),$(subst ., ,$(VERSION)))
SOVERSION     = 0
SONAME        = libjobq.so.$(SOVERSION)
SO_REAL       = libjobq.so.$(SOVERSION).$(call version_word,2).$(call version_word,3)
# What libjobq.a needs at link time besides itself: rustc's native-static-libs
# for Linux (`make native-static-libs` prints what this rustc says today).
NATIVE_STATIC_LIBS ?= -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
# Named explicitly while the pre-linked object still holds .llvmbc, so
# binutils does not offer it to an LLVMgold plugin (see below).
BFD_TARGET    = $(shell $(LD) --print-output-format)
SIZEOF_VOID_P = $(shell echo | $(CC) -dM -E - | sed -n 's/^\#define __SIZEOF_POINTER__ //p')

JOBQ_SO ?=
JOBQ_A  ?=
ifeq ($(JOBQ_SO)$(JOBQ_A),)
JOBQ_SO := $(LIBDIR)/libjobq.so
JOBQ_A  := $(LIBDIR)/libjobq.a
INSTALL_BUILD := lib
else ifeq ($(and $(JOBQ_SO),$(JOBQ_A)),)
$(error give both JOBQ_SO and JOBQ_A, or neither)
endif

SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' \
	-e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(libdir))|g' \
	-e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(includedir))|g' \
	-e 's|@INCLUDEDIR_FROM_LIBDIR@|$(shell realpath -m --relative-to=$(libdir) $(includedir))|g' \
	-e 's|@VERSION@|$(VERSION)|g' -e 's|@VERSION_MAJOR@|$(call version_word,1)|g' \
	-e 's|@SOVERSION@|$(SOVERSION)|g' -e 's|@SO_REAL@|$(SO_REAL)|g' \
	-e 's|@NATIVE_STATIC_LIBS@|$(NATIVE_STATIC_LIBS)|g' \
	-e 's|@SIZEOF_VOID_P@|$(SIZEOF_VOID_P)|g'

# Checks the libraries about to be installed: the soname, and that the shared
# library exports nothing but the C API.
install-check: $(INSTALL_BUILD)
	@readelf -d $(JOBQ_SO) | grep -q 'Library soname: \[$(SONAME)\]' \
	    || { echo "$(JOBQ_SO): soname is not $(SONAME)"; exit 1; }
	@bad=$$($(NM) -D --defined-only $(JOBQ_SO) | awk 'NF == 3 && $$3 !~ /^jobq_/ {print $$3}'); \
	    [ -z "$$bad" ] || { echo "$(JOBQ_SO) exports more than jobq_*: $$bad"; exit 1; }

# libjobq.a as rustc makes it holds the bundled SQLite and the Rust standard
# library as global symbols: a program that also links the system -lsqlite3
# (or another Rust staticlib) would silently get ours. So pre-link every
# member into one relocatable object and make all but jobq_* local. The
# members' embedded LLVM bitcode (.llvmbc) is dropped: concatenated by ld -r
# it is no longer valid bitcode, and LLVM tools (llvm-nm, or binutils with
# LLVMgold in /usr/lib/bfd-plugins) abort on it.
$(STAGE)/libjobq.a: install-check
	@rm -rf $(STAGE) && mkdir -p $(STAGE)
	$(LD) -r --whole-archive $(JOBQ_A) -o $(STAGE)/jobq-all.o
	$(NM) --target=$(BFD_TARGET) -g --defined-only $(STAGE)/jobq-all.o \
	    | awk '$$3 ~ /^jobq_/ {print $$3}' | sort > $(STAGE)/exports.txt
	@[ -s $(STAGE)/exports.txt ] || { echo "no jobq_ symbols in $(JOBQ_A)"; exit 1; }
	$(OBJCOPY) -I $(BFD_TARGET) --remove-section=.llvmbc --remove-section=.llvmcmd \
	    --keep-global-symbols=$(STAGE)/exports.txt $(STAGE)/jobq-all.o $(STAGE)/jobq.o
	@rm -f $(STAGE)/jobq-all.o
	$(AR) rcs $@ $(STAGE)/jobq.o
	@bad=$$($(NM) -g --defined-only $@ | awk 'NF == 3 && $$3 !~ /^jobq_/ {print $$3}'); \
	    [ -z "$$bad" ] || { echo "$@ still exports: $$bad"; exit 1; }

install: $(STAGE)/libjobq.a
	$(INSTALL) -d $(DESTDIR)$(libdir) $(DESTDIR)$(includedir) $(DESTDIR)$(pkgconfigdir) $(DESTDIR)$(cmakedir) \
	    $(DESTDIR)$(datadir)/jobq
	$(INSTALL) -m 0755 $(JOBQ_SO) $(DESTDIR)$(libdir)/$(SO_REAL)
	ln -sfn $(SO_REAL) $(DESTDIR)$(libdir)/$(SONAME)
	ln -sfn $(SONAME) $(DESTDIR)$(libdir)/libjobq.so
	$(INSTALL) -m 0644 $(STAGE)/libjobq.a $(DESTDIR)$(libdir)/libjobq.a
	$(INSTALL) -m 0644 include/jobq.h include/jobq.hpp $(DESTDIR)$(includedir)/
	$(INSTALL) -m 0644 pkg/jobq.supp $(DESTDIR)$(datadir)/jobq/jobq.supp
	@echo "generate $(DESTDIR)$(pkgconfigdir)/jobq.pc"
	@$(SUBST) pkg/jobq.pc.in > $(DESTDIR)$(pkgconfigdir)/jobq.pc
	@echo "generate $(DESTDIR)$(cmakedir)/jobqConfig.cmake"
	@$(SUBST) pkg/jobqConfig.cmake.in > $(DESTDIR)$(cmakedir)/jobqConfig.cmake
	@echo "generate $(DESTDIR)$(cmakedir)/jobqConfigVersion.cmake"
	@$(SUBST) pkg/jobqConfigVersion.cmake.in > $(DESTDIR)$(cmakedir)/jobqConfigVersion.cmake
	@rm -rf $(STAGE)
	@echo "installed jobq $(VERSION) into $(DESTDIR)$(PREFIX)"

uninstall:
	rm -f $(DESTDIR)$(libdir)/$(SO_REAL) $(DESTDIR)$(libdir)/$(SONAME) $(DESTDIR)$(libdir)/libjobq.so \
	    $(DESTDIR)$(libdir)/libjobq.a $(DESTDIR)$(includedir)/jobq.h $(DESTDIR)$(includedir)/jobq.hpp \
	    $(DESTDIR)$(pkgconfigdir)/jobq.pc $(DESTDIR)$(cmakedir)/jobqConfig.cmake \
	    $(DESTDIR)$(cmakedir)/jobqConfigVersion.cmake $(DESTDIR)$(datadir)/jobq/jobq.supp
	@rmdir $(DESTDIR)$(cmakedir) $(DESTDIR)$(datadir)/jobq 2>/dev/null || true

# What rustc says libjobq.a needs (compare with NATIVE_STATIC_LIBS above).
native-static-libs:
	$(CARGO) rustc --release --lib --crate-type staticlib -- --print native-static-libs 2>&1 \
	    | sed -n 's/.*native-static-libs: //p'
