# envoy-js: `make demo` and `make test` do all set-up on a fresh clone.
SHELL := /bin/bash
QJS_DIR := third_party/quickjs-ng
BUILD := build/release
CXX ?= g++
CC ?= gcc
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# Warnings are errors in every build of our own C and C++ (never quickjs-ng's, built with -w).
# `make WERROR=` turns that off, e.g. to try a compiler newer than the ones CI uses.
WERROR ?= -Werror
RUNTIME_CXXFLAGS := -std=c++20 -O2 -g -fPIC -fvisibility=hidden -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers $(WERROR) -I$(QJS_DIR)
QJS_CFLAGS := -O3 -g -fPIC -fvisibility=hidden -D_GNU_SOURCE -DNDEBUG -w
RUNTIME_SRCS := $(wildcard runtime/*.cc)
RUNTIME_HDRS := $(wildcard runtime/*.h)
QJS_SRCS := quickjs.c libregexp.c libunicode.c dtoa.c
QJS_STAMP := $(QJS_DIR)/.origin

RUNTIME_OBJS := $(patsubst runtime/%.cc,$(BUILD)/runtime/%.o,$(RUNTIME_SRCS))
QJS_OBJS := $(patsubst %.c,$(BUILD)/qjs/%.o,$(QJS_SRCS))
RUNTIME_LIB := $(BUILD)/libenvoy_js_runtime.a

NODEDIR := $(shell node -p "require('path').resolve(process.execPath, '..', '..')")

.PHONY: all setup quickjs node-deps runtime demo test test-runtime test-sdk clean
all: runtime wasm

quickjs: $(QJS_STAMP)
$(QJS_STAMP):
	scripts/fetch-quickjs.sh

SDK_DIST_STAMP := build/sdk-dist.stamp
node-deps: node_modules/.package-lock.json $(SDK_DIST_STAMP)
node_modules/.package-lock.json: package.json package-lock.json sdk/package.json
	npm ci --no-audit --no-fund
	@touch $@
# The SDK builds here, not on install (the package users get is built when packed: prepack),
# and again whenever its sources change: filters type-check against sdk/dist's declarations.
$(SDK_DIST_STAMP): node_modules/.package-lock.json $(shell find sdk/src -name '*.ts') $(wildcard sdk/cli/*.mjs sdk/tsconfig*.json)
	npm run build -w sdk --silent
	@mkdir -p $(dir $@) && touch $@

setup: quickjs node-deps

# quickjs-ng's own release configuration (CMake Release: -O3 -DNDEBUG). Without NDEBUG its
# asserts and debug-dump hooks are compiled in (~5 % of engine start); -O3 over -O2 took
# another ~4 % off engine start (bench/RESULTS.md). Objects rebuild when QJS_CFLAGS change.
QJS_FLAGS_STAMP := $(BUILD)/qjs/flags-$(shell echo '$(QJS_CFLAGS)' | md5sum | cut -c1-12)
$(QJS_FLAGS_STAMP):
	@mkdir -p $(dir $@) && rm -f $(BUILD)/qjs/flags-* && touch $@

$(BUILD)/qjs/%.o: $(QJS_STAMP) $(QJS_FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(QJS_CFLAGS) -c $(QJS_DIR)/$*.c -o $@

$(BUILD)/runtime/%.o: runtime/%.cc $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(RUNTIME_CXXFLAGS) -c $< -o $@

$(RUNTIME_LIB): $(RUNTIME_OBJS) $(QJS_OBJS)
	@rm -f $@
	ar rcs $@ $^

runtime: $(RUNTIME_LIB)

# The main job: build the sample TypeScript filter and replay requests through QuickJS.
demo: setup wasm module
	node scripts/demo.mjs

test-runtime: setup wasm driver
	node node_modules/uvu/bin.js test/runtime '\.test\.mjs$$'

test-sdk: setup wasm
	npm test -w sdk --silent

test: setup wasm runtime driver
	scripts/run-tests.sh

include samples/samples.mk
include wasm/wasm.mk

clean:
	rm -rf build sdk/wasm
include envoy_ext/envoy.mk
include bench/bench.mk
include envoy_ext/module/module.mk
include test/reliability/reliability.mk
include test/envoy/envoy.mk
include lint.mk
