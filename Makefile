# Gatekeeper -- see README.md. `make run` starts everything; `make test` runs every test.
CC ?= cc
BUILD ?= build
PKGS := libmicrohttpd hiredis libpq json-c libjwt libcrypto

# A fresh machine has none of the libraries: install them once, then carry on.
ifeq ($(filter clean help,$(MAKECMDGOALS)),)
ifneq ($(shell pkg-config --exists $(PKGS) check && echo ok),ok)
$(info pkg-config cannot find all of: $(PKGS) check; running scripts/install-deps)
ifneq ($(shell scripts/install-deps >&2 && pkg-config --exists $(PKGS) check && echo ok),ok)
$(error scripts/install-deps did not provide: $(PKGS) check)
endif
endif
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wvla
WERROR ?= -Werror
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(WERROR) -Iinclude -MMD -MP \
             $(shell pkg-config --cflags $(PKGS)) $(CFLAGS)
LDLIBS = $(shell pkg-config --libs $(PKGS)) -pthread
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LIBS = $(shell pkg-config --libs check)
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC)) $(BUILD)/gen/scripts.o
LUA := $(wildcard src/scripts/*.lua)
WORKER_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard workers/*.c))
UNIT_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/unit/*.c))
IT_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/integration/*.c) \
            $(filter-out tests/support/freeport.c,$(wildcard tests/support/*.c)))
ALL_OBJ := $(LIB_OBJ) $(BUILD)/src/main.o $(WORKER_OBJ) $(UNIT_OBJ) $(IT_OBJ) $(BUILD)/tests/support/freeport.o

.PHONY: all run test test-unit test-integration sanitize clean deps format-check help

all: $(BUILD)/gatekeeper $(BUILD)/gatekeeper-worker

$(BUILD)/libgk.a: $(LIB_OBJ)
	$(AR) rcs $@ $^
$(BUILD)/gatekeeper: $(BUILD)/src/main.o $(BUILD)/libgk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/gatekeeper-worker: $(WORKER_OBJ) $(BUILD)/libgk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/unit-tests: $(UNIT_OBJ) $(BUILD)/libgk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)
$(BUILD)/it-tests: $(IT_OBJ) $(BUILD)/libgk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)
$(BUILD)/freeport: $(BUILD)/tests/support/freeport.o
	$(CC) $(LDFLAGS) -o $@ $^

# The Lua scripts, embedded as C strings (see scripts/embed-lua).
$(BUILD)/gen/scripts.c: $(LUA) scripts/embed-lua
	@mkdir -p $(@D)
	scripts/embed-lua src/scripts > $@
$(BUILD)/gen/scripts.o: $(BUILD)/gen/scripts.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Itests -DGK_SOURCE_DIR='"$(CURDIR)"' -c -o $@ $<
$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

deps:
	scripts/install-deps

run: all
	scripts/run $(BUILD)

test: test-unit test-integration

test-unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests

test-integration: all $(BUILD)/it-tests $(BUILD)/freeport
	tests/integration/run.sh $(BUILD)

# Own build directory, so sanitized and plain objects never mix.
sanitize:
	$(MAKE) BUILD=build-san CFLAGS="-O1 -g $(SAN)" LDFLAGS="$(SAN)" CK_TIMEOUT_MULTIPLIER=3 test

format-check:
	clang-format --dry-run --Werror src/*.c include/gk/*.h workers/*.[ch] tests/*/*.[ch]

clean:
	rm -rf build build-san

help:
	@echo "make [all|run|test|test-unit|test-integration|sanitize|format-check|clean]"

-include $(ALL_OBJ:.o=.d)
