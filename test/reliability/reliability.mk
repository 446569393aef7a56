# Reliability and hostile input: the scenario driver, sanitizer runs, the event fuzzer, the soak
# and the thread-sanitizer run. Included by the top-level Makefile; none of it is part of
# `make test` (.ci/run adds `make ci-reliability`: a short sanitizer pass and a 30 s fuzz).
# `make fuzz` installs clang-14 and libFuzzer (Debian packages) when they are missing; the other
# targets use g++, whose sanitizer runtimes come with it.
#
#   make driver                          build/release/driver (plain -O2 build)
#   make test-sanitize                   ASan+UBSan+LSan: every filter x scenario in sanitize.cases
#   make fuzz FUZZ_SECONDS=60            libFuzzer over event sequences (clang-14)
#   make soak SOAK_STREAMS=1000000       one engine, many streams: RSS / heap drift
#   make test-tsan TSAN_THREADS=4        N engines on N threads under ThreadSanitizer
#   make ci-reliability                  .ci/run's part: sanitize.cases on the clang fuzz build, 30 s fuzz
#   make chaos-envoy                     a real Envoy under load, faults, hot reload and hostile input
#                                        (test/reliability/chaos/; the short version runs in make test)

REL := test/reliability
REL_CXXFLAGS := -std=c++20 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers $(WERROR) -I$(QJS_DIR)
# The scripted Envoy model, shared by every driver here (and by the addon, the ABI host stub and
# the wasm engine); it checks the runtime's side of the host contract.
REL_HOST_SRCS := test/host_stub/scripted_host.cc
REL_HOST_HDRS := test/host_stub/scripted_host.h test/host_stub/list_header_map.h

.PHONY: driver test-sanitize sanitize-build fuzz fuzz-build fuzz-check-clang soak test-tsan

# ---- the driver, plain -----------------------------------------------------------------------

$(BUILD)/driver: $(REL)/driver.cc $(REL_HOST_SRCS) $(REL_HOST_HDRS) $(RUNTIME_HDRS) $(RUNTIME_LIB)
	$(CXX) $(REL_CXXFLAGS) -O2 -g $(REL)/driver.cc $(REL_HOST_SRCS) $(RUNTIME_LIB) -lm -lpthread -o $@

driver: $(BUILD)/driver

# ---- ASan + UBSan + LSan ---------------------------------------------------------------------

SAN := build/sanitize
# GCC 12's -Wmaybe-uninitialized misfires on std::optional members under -fsanitize=address at
# -O1 (bindings.cc's HeadersCall): reported, not fatal, in the sanitizer builds only.
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1 -Wno-error=maybe-uninitialized
SAN_OBJS := $(patsubst runtime/%.cc,$(SAN)/runtime/%.o,$(RUNTIME_SRCS)) $(patsubst %.c,$(SAN)/qjs/%.o,$(QJS_SRCS)) \
            $(SAN)/host/scripted_host.o
# exitcode=23 tells a sanitizer report apart from a failed expectation (exit 1).
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:exitcode=23 \
           UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=23 LSAN_OPTIONS=exitcode=23

$(SAN)/qjs/%.o: $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_FLAGS) -D_GNU_SOURCE -w -c $(QJS_DIR)/$*.c -o $@

$(SAN)/runtime/%.o: runtime/%.cc $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(REL_CXXFLAGS) $(SAN_FLAGS) -c $< -o $@

$(SAN)/host/scripted_host.o: $(REL_HOST_SRCS) $(REL_HOST_HDRS) $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(REL_CXXFLAGS) $(SAN_FLAGS) -c $< -o $@

$(SAN)/driver: $(REL)/driver.cc $(SAN_OBJS)
	$(CXX) $(REL_CXXFLAGS) $(SAN_FLAGS) $(REL)/driver.cc $(SAN_OBJS) -lm -lpthread -o $@

sanitize-build: quickjs
	$(MAKE) -j$(JOBS) $(SAN)/driver

test-sanitize: sanitize-build
	$(SAN_ENV) $(REL)/run-cases.sh $(SAN)/driver $(REL)/sanitize.cases

# ---- libFuzzer over event sequences (clang-14) -----------------------------------------------

FUZZ := build/fuzz
FUZZ_SECONDS ?= 60
CLANG ?= clang-14
CLANGXX ?= clang++-14
# quickjs-ng gets ASan/UBSan but no coverage: the fuzzer steers by the branches of the runtime
# and of the Envoy model around it.
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1
FUZZ_OBJS := $(patsubst runtime/%.cc,$(FUZZ)/runtime/%.o,$(RUNTIME_SRCS)) $(patsubst %.c,$(FUZZ)/qjs/%.o,$(QJS_SRCS)) \
             $(FUZZ)/host/scripted_host.o
FUZZ_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

# clang-14 and its compiler-rt (libFuzzer, the sanitizer runtimes) from Debian when missing.
FUZZ_PACKAGES := clang-14 libclang-rt-14-dev
fuzz-check-clang:
	@scripts/install-debian-packages.sh fuzz $(FUZZ_PACKAGES)
	@echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' | \
	  $(CLANGXX) -x c++ -fsanitize=fuzzer - -o /dev/null 2>/dev/null || \
	  { echo "make fuzz: $(CLANGXX) cannot link libFuzzer (-fsanitize=fuzzer)" >&2; exit 1; }

$(FUZZ)/qjs/%.o: $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_SAN) -D_GNU_SOURCE -w -c $(QJS_DIR)/$*.c -o $@

$(FUZZ)/runtime/%.o: runtime/%.cc $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CLANGXX) $(REL_CXXFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ)/host/scripted_host.o: $(REL_HOST_SRCS) $(REL_HOST_HDRS) $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CLANGXX) $(REL_CXXFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ)/fuzz_events: $(REL)/fuzz_events.cc $(REL_HOST_HDRS) $(FUZZ_OBJS)
	$(CLANGXX) $(REL_CXXFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer $(REL)/fuzz_events.cc $(FUZZ_OBJS) -lm -lpthread -o $@

fuzz-build: fuzz-check-clang quickjs
	$(MAKE) -j$(JOBS) $(FUZZ)/fuzz_events

# The scenario driver on the fuzz build's objects (clang-14, ASan+UBSan; the coverage
# instrumentation is inert without libFuzzer): .ci/run's sanitizer pass shares one build with
# its fuzz run instead of building the runtime and quickjs-ng a second time with g++.
$(FUZZ)/driver: $(REL)/driver.cc $(REL_HOST_HDRS) $(FUZZ_OBJS)
	$(CLANGXX) $(REL_CXXFLAGS) $(FUZZ_SAN) $(REL)/driver.cc $(FUZZ_OBJS) -lm -lpthread -o $@

# New inputs go to build/fuzz/corpus; the committed seeds in $(REL)/corpus are only read.
fuzz: fuzz-build
	@mkdir -p $(FUZZ)/corpus $(FUZZ)/artifacts
	$(FUZZ_ENV) $(FUZZ)/fuzz_events -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=3072 \
	  -max_len=2048 -len_control=0 -print_final_stats=1 -artifact_prefix=$(FUZZ)/artifacts/ $(FUZZ)/corpus $(REL)/corpus

# ---- .ci/run, after make test ----------------------------------------------------------------
# One clang-14 ASan+UBSan build of the runtime, quickjs-ng and the scripted model serves both:
# every case of sanitize.cases through the scenario driver (ASan+UBSan+LSan), then a 30 s fuzz
# over event sequences. From a clean build on 2 cores: about 3 minutes on a quiet machine,
# 7-8 under load 5; running takes 40-46 s of it, the rest is building.
CI_FUZZ_SECONDS ?= 30
.PHONY: ci-reliability
ci-reliability: fuzz-check-clang quickjs
	$(MAKE) -j$(JOBS) $(FUZZ)/driver $(FUZZ)/fuzz_events
	$(SAN_ENV) $(REL)/run-cases.sh $(FUZZ)/driver $(REL)/sanitize.cases
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(CI_FUZZ_SECONDS)

# ---- soak: one engine, many streams ------------------------------------------------------------

SOAK_STREAMS ?= 1000000

$(BUILD)/soak: $(REL)/soak.cc $(REL)/stream_mix.h $(REL_HOST_SRCS) $(REL_HOST_HDRS) $(RUNTIME_HDRS) $(RUNTIME_LIB)
	$(CXX) $(REL_CXXFLAGS) -O2 -g $(REL)/soak.cc $(REL_HOST_SRCS) $(RUNTIME_LIB) -lm -lpthread -o $@

soak: quickjs $(BUILD)/soak
	$(BUILD)/soak $(SOAK_STREAMS)

# ---- ThreadSanitizer: N engines on N threads ---------------------------------------------------

TSAN := build/tsan
TSAN_THREADS ?= 4
TSAN_STREAMS ?= 3000
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer -g -O1
TSAN_OBJS := $(patsubst runtime/%.cc,$(TSAN)/runtime/%.o,$(RUNTIME_SRCS)) $(patsubst %.c,$(TSAN)/qjs/%.o,$(QJS_SRCS)) \
             $(TSAN)/host/scripted_host.o

$(TSAN)/qjs/%.o: $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_FLAGS) -D_GNU_SOURCE -w -c $(QJS_DIR)/$*.c -o $@

$(TSAN)/runtime/%.o: runtime/%.cc $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(REL_CXXFLAGS) $(TSAN_FLAGS) -c $< -o $@

$(TSAN)/host/scripted_host.o: $(REL_HOST_SRCS) $(REL_HOST_HDRS) $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(REL_CXXFLAGS) $(TSAN_FLAGS) -c $< -o $@

$(TSAN)/tsan_engines: $(REL)/tsan.cc $(REL)/stream_mix.h $(REL_HOST_HDRS) $(TSAN_OBJS)
	$(CXX) $(REL_CXXFLAGS) $(TSAN_FLAGS) $(REL)/tsan.cc $(TSAN_OBJS) -lm -lpthread -o $@

test-tsan: quickjs
	$(MAKE) -j$(JOBS) $(TSAN)/tsan_engines
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:exitcode=66 $(TSAN)/tsan_engines $(TSAN_THREADS) $(TSAN_STREAMS)

# The bad-input catalogue (test/runtime/bad_input.test.mjs) feeds the runtime raw config text
# through the driver: build it with the native host stub.
native: $(BUILD)/driver

# ---- the dynamic module under sanitizers, driven by the ABI host stub -------------------------
#
#   make test-module-asan     ASan+UBSan(+LSan): libenvoy_js.so and abi_host(_1_38) built with
#                             the sanitizers, then test/module/module.test.mjs against them
#   make test-module-tsan     the same under ThreadSanitizer (workers on threads of their own,
#                             configs destroyed on a worker, the module's timer thread)
#
# Everything is built -fPIC into build/<variant>-module/ (the module is a shared object). The
# module links the sanitizer runtime dynamically; the stub executable provides it.

define MODULE_SANITIZER_VARIANT
$(1)_DIR := build/$(1)-module
$(1)_OBJS := $$(patsubst runtime/%.cc,$$($(1)_DIR)/runtime/%.o,$(RUNTIME_SRCS)) $$(patsubst %.c,$$($(1)_DIR)/qjs/%.o,$(QJS_SRCS))
$(1)_MODULE_OBJS := $$(patsubst envoy_ext/module/%.cc,$$($(1)_DIR)/module/%.o,$(wildcard envoy_ext/module/*.cc))
$(1)_HOST_OBJS := $$($(1)_DIR)/host/abi_host.o $$($(1)_DIR)/host/scripted/scenario_json.o $$($(1)_DIR)/host/scripted/scripted_host.o

$$($(1)_DIR)/qjs/%.o: $(QJS_STAMP)
	@mkdir -p $$(dir $$@)
	$(CC) $(2) -fPIC -fvisibility=hidden -D_GNU_SOURCE -w -c $(QJS_DIR)/$$*.c -o $$@

$$($(1)_DIR)/runtime/%.o: runtime/%.cc $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $$(dir $$@)
	$(CXX) $(REL_CXXFLAGS) $(2) -fPIC -fvisibility=hidden -c $$< -o $$@

$$($(1)_DIR)/module/%.o: envoy_ext/module/%.cc $(MODULE_HDRS) $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $$(dir $$@)
	$(CXX) $(REL_CXXFLAGS) $(2) -fPIC -fvisibility=hidden -c $$< -o $$@

$$($(1)_DIR)/libenvoy_js.so: $$($(1)_MODULE_OBJS) $$($(1)_OBJS) envoy_ext/module/exports.map
	$(CXX) $(2) -shared -o $$@ $$($(1)_MODULE_OBJS) $$($(1)_OBJS) -Wl,--version-script=envoy_ext/module/exports.map -Wl,-z,nodelete -ldl -lpthread -lm

$$($(1)_DIR)/host/%.o: test/abi_host/%.cc $(wildcard test/abi_host/*.h) test/host_stub/scripted_host.h $(MODULE_HDRS) $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $$(dir $$@)
	$(CXX) $(REL_CXXFLAGS) $(2) -c $$< -o $$@

$$($(1)_DIR)/host/scripted/%.o: test/host_stub/%.cc $(wildcard test/host_stub/*.h) $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $$(dir $$@)
	$(CXX) $(REL_CXXFLAGS) $(2) -c $$< -o $$@

# The stub's own runtime objects (scenario parsing, the scripted host) are the sanitized ones.
$$($(1)_DIR)/abi_host: $$($(1)_HOST_OBJS) $$($(1)_DIR)/host/envoy_1_39.o $$($(1)_OBJS)
	$(CXX) $(2) -rdynamic -o $$@ $$^ -ldl -lpthread -lm

$$($(1)_DIR)/abi_host_1_38: $$($(1)_HOST_OBJS) $$($(1)_OBJS)
	$(CXX) $(2) -rdynamic -o $$@ $$^ -ldl -lpthread -lm

$(1)-module-build: quickjs
	$(MAKE) -j$(JOBS) $$($(1)_DIR)/libenvoy_js.so $$($(1)_DIR)/abi_host $$($(1)_DIR)/abi_host_1_38
endef

$(eval $(call MODULE_SANITIZER_VARIANT,asan,$(SAN_FLAGS)))
$(eval $(call MODULE_SANITIZER_VARIANT,tsan,$(TSAN_FLAGS)))

.PHONY: asan-module-build tsan-module-build test-module-asan test-module-tsan

# LSan: the module keeps its process-wide state (Globals) on purpose; that is not reported as
# a leak because it stays reachable.
test-module-asan: asan-module-build native
	$(SAN_ENV) ENVOY_JS_ABI_HOST=$(asan_DIR)/abi_host ENVOY_JS_MODULE=$(asan_DIR)/libenvoy_js.so \
	  node node_modules/uvu/bin.js test/module 'module\.test\.mjs$$'

test-module-tsan: tsan-module-build native
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:exitcode=66 \
	  ENVOY_JS_ABI_HOST=$(tsan_DIR)/abi_host ENVOY_JS_MODULE=$(tsan_DIR)/libenvoy_js.so \
	  node node_modules/uvu/bin.js test/module 'module\.test\.mjs$$'

# ---- chaos inside a real Envoy -------------------------------------------------------------------
# The long run: 10,000 held streams, then CHAOS_REQUESTS requests with faults and a filter reload
# every few seconds; writes test/reliability/ENVOY-RESULTS.md and envoy-results.json. The short
# version (test/reliability/chaos/chaos.test.mjs) is part of make test and writes to build/chaos.
CHAOS_REQUESTS ?= 1000000
CHAOS_ARGS ?=
.PHONY: chaos-envoy
chaos-envoy: envoy module node-deps
	node $(REL)/chaos/chaos.mjs --requests $(CHAOS_REQUESTS) $(CHAOS_ARGS)
