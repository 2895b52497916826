# Gatekeeper -- see README.md. `make run` starts everything; `make test` runs every test.
CC ?= cc
BUILD ?= build
# What the server and the worker link; the unit tests also link Check and libjwt (the independent
# JWT implementation our tokens are held to), which nothing else links.
PKGS := libmicrohttpd hiredis libpq json-c libcrypto
TEST_PKGS := check libjwt

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wvla
WERROR ?= -Werror
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(WERROR) -Iinclude -I$(BUILD)/gen -MMD -MP \
             $(shell pkg-config --cflags $(PKGS)) $(CFLAGS)
LDLIBS = $(shell pkg-config --libs $(PKGS)) -lm -pthread
CHECK_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS))
CHECK_LIBS = $(shell pkg-config --libs $(TEST_PKGS))
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c))
# Files the server sends as they are, embedded as C strings (see scripts/embed-file).
EMBED := docs/openapi.json docs/api-docs.html web/gatekeeper.js web/wait.html web/error.html \
         $(wildcard web/i18n/*.json) web/admin.html
LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC)) $(BUILD)/gen/scripts.o \
           $(patsubst %,$(BUILD)/gen/embed/%.o,$(EMBED))
LUA := $(wildcard src/scripts/*.lua)
WORKER_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard workers/*.c))
AUDIT_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard audit/*.c))
UNIT_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/unit/*.c))
IT_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/integration/*.c) \
            $(filter-out tests/support/freeport.c,$(wildcard tests/support/*.c)))
ALL_OBJ := $(LIB_OBJ) $(BUILD)/src/main.o $(WORKER_OBJ) $(AUDIT_OBJ) $(UNIT_OBJ) $(IT_OBJ) $(BUILD)/tests/support/freeport.o

.PHONY: all run test check test-unit test-integration sanitize clean deps format-check help bench

all: $(BUILD)/gatekeeper $(BUILD)/gatekeeper-worker $(BUILD)/gatekeeper-audit

$(BUILD)/libgk.a: $(LIB_OBJ)
	$(AR) rcs $@ $^
$(BUILD)/gatekeeper: $(BUILD)/src/main.o $(BUILD)/libgk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/gatekeeper-worker: $(WORKER_OBJ) $(BUILD)/libgk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/gatekeeper-audit: $(AUDIT_OBJ) $(BUILD)/libgk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
# The handler tests call handlers with requests that have no connection behind them
# (tests/unit/fake_http.h): these request calls go to the fakes first, which pass real requests on.
comma := ,
UNIT_WRAP := $(patsubst %,-Wl$(comma)--wrap=%,gk_req_header gk_req_cookie gk_req_suspend gk_req_resume)
$(BUILD)/unit-tests: $(UNIT_OBJ) $(BUILD)/libgk.a
	$(CC) $(LDFLAGS) $(UNIT_WRAP) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)
$(BUILD)/it-tests: $(IT_OBJ) $(BUILD)/libgk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)
$(BUILD)/freeport: $(BUILD)/tests/support/freeport.o
	$(CC) $(LDFLAGS) -o $@ $^
$(BUILD)/gk-bench-tokens: $(BUILD)/bench/tokens.o $(BUILD)/libgk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/gk-bench-pow: $(BUILD)/bench/pow.o $(BUILD)/libgk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The Lua scripts, embedded as C strings, and their list (see scripts/embed-lua); every object
# waits for the list, which gk/script.h includes.
$(BUILD)/gen/scripts.c: $(LUA) scripts/embed-lua | $(DEPS_STAMP)
	@mkdir -p $(@D)
	scripts/embed-lua src/scripts > $@
$(BUILD)/gen/gk_lua.h: $(LUA) scripts/embed-lua | $(DEPS_STAMP)
	@mkdir -p $(@D)
	scripts/embed-lua --list src/scripts > $@.tmp && mv $@.tmp $@
$(BUILD)/gen/scripts.o: $(BUILD)/gen/scripts.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<
$(BUILD)/gen/embed/%.c: % scripts/embed-file | $(DEPS_STAMP)
	@mkdir -p $(@D)
	scripts/embed-file $< > $@.tmp && mv $@.tmp $@
$(BUILD)/gen/embed/%.o: $(BUILD)/gen/embed/%.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c | $(DEPS_STAMP) $(BUILD)/gen/gk_lua.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Itests -DGK_SOURCE_DIR='"$(CURDIR)"' -c -o $@ $<
$(BUILD)/%.o: %.c | $(DEPS_STAMP) $(BUILD)/gen/gk_lua.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Installing packages is a step of its own: `make deps` (run, test and check depend on it) installs
# what is missing; every compile waits for it once per build directory (the stamp).
DEPS_STAMP := $(BUILD)/.deps-installed
deps:
	scripts/install-deps
	@mkdir -p $(BUILD) && touch $(DEPS_STAMP)
$(DEPS_STAMP): scripts/install-deps
	scripts/install-deps
	@mkdir -p $(@D) && touch $@

run: deps all
	scripts/run $(BUILD)

# The fault, abuse and browser suites come last, one after the other: they take longest, load
# the machine, and the browser tests need the most (Chromium, nginx, npm).
test: deps test-unit test-compose test-docs test-integration test-cluster
	$(MAKE) --no-print-directory test-faults
	$(MAKE) --no-print-directory test-abuse
	$(MAKE) --no-print-directory test-e2e

# The loop a developer runs after each change: the unit tests, then the integration suites in
# two shards side by side, each inside its own Redis and PostgreSQL (GK_IT_SHARD, about a minute).
check: deps test-unit all $(BUILD)/it-tests $(BUILD)/freeport
	tests/integration/run.sh $(BUILD) env GK_IT_SHARD=0/2 $(BUILD)/it-tests & first=$$!; \
	tests/integration/run.sh $(BUILD) env GK_IT_SHARD=1/2 $(BUILD)/it-tests; second=$$?; \
	wait $$first && exit $$second

test-unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests

test-integration: all $(BUILD)/it-tests $(BUILD)/freeport
	tests/integration/run.sh $(BUILD)

# The queue, worker, activity and pow suites unchanged on a Redis Cluster of 3 masters + 3 replicas,
# then the cluster suite (businesses on every master, failover and resharding under load).
CLUSTER_SUITES := queue worker activity pow console sched cluster
.PHONY: test-cluster
test-cluster: all $(BUILD)/it-tests $(BUILD)/freeport
	GK_IT_CLUSTER=1 tests/integration/run.sh $(BUILD) sh -c \
	  'for s in $(CLUSTER_SUITES); do CK_RUN_SUITE=$$s $(BUILD)/it-tests || exit 1; done'

# docker-compose.yml, Dockerfile and .dockerignore, checked by reading them (no Docker engine here).
.PHONY: test-compose
test-compose:
	tests/compose/check.py

# docs/API.md against docs/openapi.json, links between documents, nothing outside the repository.
.PHONY: test-docs
test-docs:
	tests/docs/check.py

# Waiting room, nginx and example backend in headless Chromium (tests/e2e/run.sh).
.PHONY: test-e2e
test-e2e: all $(BUILD)/freeport
	tests/e2e/run.sh $(BUILD)

# Crashes and outages during a flash crowd (tests/faults/, docs/FAILURES.md): API servers and
# workers SIGKILLed again and again, Redis killed and restarted (AOF everysec), PostgreSQL stopped.
.PHONY: test-faults
test-faults: all $(BUILD)/gk-bench-tokens
	tests/faults/run.sh $(BUILD)

# Every attack of docs/SECURITY.md's list, each beside a well-behaved client whose p99 is kept.
.PHONY: test-abuse
test-abuse: all $(BUILD)/gk-bench-tokens
	tests/abuse/run.sh $(BUILD)

# Throughput and latency against the ceilings, measured in one run (not part of `make test`).
bench: all $(BUILD)/gk-bench-tokens $(BUILD)/gk-bench-pow
	bench/run.sh $(BUILD)

# 30 minutes (SOAK_SECONDS) of the flash-crowd mix at 70% of its measured peak: no 5xx, flat
# memory (bench/soak.sh; not part of `make test`).
.PHONY: soak
soak: all
	bench/soak.sh $(BUILD)

# Own build directory, so sanitized and plain objects never mix.
sanitize:
	$(MAKE) BUILD=build-san CFLAGS="-O1 -g $(SAN)" LDFLAGS="$(SAN)" CK_TIMEOUT_MULTIPLIER=3 test

# The integration tests with the server and worker binaries under valgrind memcheck (own build
# directory, plain -O1 objects; the test programs themselves run natively). Any error or definite
# leak fails the run twice over: the binary exits 99, which the tests check on a clean stop, and
# every process writes its own log (-q: empty when clean), which must all be empty afterwards,
# so a process the tests kill with SIGKILL is checked for errors too.
VALGRIND_LOGS := $(CURDIR)/build-vg/valgrind
VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
            --show-leak-kinds=definite --num-callers=30 --suppressions=$(CURDIR)/tests/valgrind.supp \
            --log-file=$(VALGRIND_LOGS)/%p.log
.PHONY: valgrind
valgrind:
	scripts/install-deps --valgrind
	$(MAKE) BUILD=build-vg CFLAGS="-O1 -g" all build-vg/it-tests build-vg/freeport
	rm -rf $(VALGRIND_LOGS) && mkdir -p $(VALGRIND_LOGS)
	GK_TEST_WRAPPER="$(VALGRIND)" CK_TIMEOUT_MULTIPLIER=5 tests/integration/run.sh build-vg
	@bad=$$(find $(VALGRIND_LOGS) -name '*.log' -size +0c); \
	if [ -n "$$bad" ]; then cat $$bad; echo "valgrind: errors in $$bad" >&2; exit 1; fi; \
	echo "valgrind: no errors, no definite leaks ($$(ls $(VALGRIND_LOGS) | wc -l) processes)"

# libFuzzer targets, one per parser of outside input (tests/fuzz/fuzz_*.c). The library is built
# with clang and the same sanitizers in its own directory; each target runs FUZZ_SECONDS on its
# seed corpus (tests/fuzz/corpus/<target>/, read only) plus what it finds (build-fuzz/corpus/).
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/fuzz/*.c))
FUZZ_SECONDS ?= 60
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
.PHONY: fuzz fuzz-smoke fuzz-build
$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/libgk.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)
fuzz-build: $(addprefix $(BUILD)/fuzz/,$(FUZZ_TARGETS))
fuzz:
	scripts/install-deps --fuzz
	$(MAKE) BUILD=build-fuzz CC=clang CFLAGS="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN)" \
	        LDFLAGS="$(FUZZ_SAN)" fuzz-build
	tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)
# CI's short pass: every target for 10 s.
fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=10

format-check:
	scripts/install-deps --format
	clang-format --dry-run --Werror src/*.[ch] include/gk/*.h workers/*.[ch] audit/*.[ch] tests/*/*.[ch]

clean:
	rm -rf build build-san build-fuzz build-vg

help:
	@echo "make [all|deps|run|check|test|test-unit|test-integration|test-cluster|test-faults|test-abuse|test-e2e|sanitize|valgrind|fuzz|fuzz-smoke|bench|soak|format-check|clean]"

-include $(ALL_OBJ:.o=.d)
-include $(FUZZ_OBJ:.o=.d)
-include $(BUILD)/bench/tokens.d
