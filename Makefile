# Builds the library (cargo) and the C examples against it, and runs the
# demo. `make demo` is the README's first command.
#
#   make            build the release library and the C examples
#   make demo       ... and run a producer and a worker pool on a local file
#   make clean

CARGO   ?= cargo
CC      ?= cc
CFLAGS  ?= -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror
LIBDIR  := target/release
BUILD   := build
EXAMPLES := $(BUILD)/producer $(BUILD)/worker

.PHONY: all lib demo clean
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

# Short retry delays and 3 attempts, so the demo shows a retry and a dead job.
demo: export JOBQ_CONFIG = {"backoff_base_ms": 200, "max_attempts": 3}
demo: $(EXAMPLES)
	@rm -f $(BUILD)/demo.db $(BUILD)/demo.db-wal $(BUILD)/demo.db-shm
	@echo "== producer: 8 jobs into queue 'emails' of $(BUILD)/demo.db"
	$(BUILD)/producer $(BUILD)/demo.db emails "welcome alice" "welcome bob" "invoice 1001" \
	    "invoice 1002" "fail: smtp down" "reset password carol" "poison: bad address" "digest weekly"
	@echo "== worker: 4 threads until the queue is quiet"
	$(BUILD)/worker $(BUILD)/demo.db emails 4

clean:
	rm -rf $(BUILD)
