# `make bench`: builds the benchmark driver (bench/driver.cc, -O2, linked with the runtime
# library), counts instructions with callgrind, times everything, and writes bench/results.json
# and bench/RESULTS.md. Included from the root Makefile; installs the LuaJIT headers and valgrind
# (Debian packages) when they are missing.
#
#   make bench            everything (a few minutes on 2 cores)
#   make bench-quick      fewer, shorter timed runs; reuses the callgrind outputs
#   make bench-driver     just the driver: bench/out/driver run | callgrind BENCH N
#   make bench-wasm       the wasm engine: load time and warm replay (bench/wasm.mjs)

BENCH_OUT := bench/out
BENCH_BIN := $(BENCH_OUT)/driver
BENCH_SRCS := bench/driver.cc bench/host.cc bench/lua_peer.cc bench/bundle.cc bench/report.cc
BENCH_HDRS := $(wildcard bench/*.h)

LUAJIT_CFLAGS := $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
LUAJIT_LIBS := $(shell pkg-config --libs luajit 2>/dev/null || echo -lluajit-5.1)
BENCH_CXXFLAGS := -std=c++20 -O2 -g -Wall -Wextra -Wno-unused-parameter $(WERROR) -I$(QJS_DIR) $(LUAJIT_CFLAGS)

# Operations per callgrind run: instructions per op = (Ir at N - Ir at 0) / N.
IR_N := 2000
IR_FLOOR_N := 20000
IR_BENCHES := header_rewrite luajit_header_rewrite host_only
IR_FILES := $(foreach b,$(IR_BENCHES),$(BENCH_OUT)/ir-$(b)-0.out $(BENCH_OUT)/ir-$(b)-$(IR_N).out) \
            $(BENCH_OUT)/ir-call_floor-0.out $(BENCH_OUT)/ir-call_floor-$(IR_FLOOR_N).out

# Steady-state profiles (collected inside bench_measured_loop only), and their op counts.
PROFILE_N_header_rewrite := 2000
PROFILE_N_async_request := 2000
PROFILE_N_engine_start := 20
PROFILE_N_engine_create := 20
PROFILE_N_body_passthrough := 20
PROFILE_N_body_transform := 4
PROFILE_BENCHES := header_rewrite async_request engine_start engine_create body_passthrough body_transform
PROFILE_FILES := $(foreach b,$(PROFILE_BENCHES),$(BENCH_OUT)/profile-$(b).txt)

CALLGRIND := valgrind --tool=callgrind --quiet

.PHONY: bench bench-quick bench-driver bench-callgrind bench-check-tools bench-clean

# Installs what the benchmarks need from Debian's packages when it is missing (LuaJIT headers for
# the Lua-filter peer, valgrind for instruction counts), as `make test` installs its own tools.
BENCH_PACKAGES := libluajit-5.1-dev valgrind
bench-check-tools:
	@scripts/install-debian-packages.sh bench $(BENCH_PACKAGES)

$(BENCH_BIN): $(BENCH_SRCS) $(BENCH_HDRS) $(RUNTIME_LIB) bench/bench.mk | bench-check-tools
	@mkdir -p $(BENCH_OUT)
	$(CXX) $(BENCH_CXXFLAGS) -o $@ $(BENCH_SRCS) $(RUNTIME_LIB) $(LUAJIT_LIBS) -lm -lpthread -ldl

bench-driver: bench-check-tools $(BENCH_BIN)

# ir-<bench>-<N>.out: the whole process (start-up, 20 warm-up ops, N ops) under callgrind.
$(BENCH_OUT)/ir-%.out: $(BENCH_BIN)
	@name='$*'; b=$${name%-*}; n=$${name##*-}; \
	  echo "callgrind: $$b N=$$n"; \
	  $(CALLGRIND) --callgrind-out-file=$@ $(BENCH_BIN) callgrind $$b $$n

$(BENCH_OUT)/profile-%.out: $(BENCH_BIN)
	@echo "callgrind profile: $* N=$(PROFILE_N_$*)"
	@$(CALLGRIND) --toggle-collect=bench_measured_loop --callgrind-out-file=$@ $(BENCH_BIN) callgrind $* $(PROFILE_N_$*)
	@echo $(PROFILE_N_$*) > $(BENCH_OUT)/profile-$*.n

.PRECIOUS: $(BENCH_OUT)/profile-%.out
$(BENCH_OUT)/profile-%.txt: $(BENCH_OUT)/profile-%.out
	@callgrind_annotate $< > $@
	@callgrind_annotate --inclusive=yes $< > $(BENCH_OUT)/profile-$*.incl.txt

# The callgrind runs are independent: two at a time on two cores. The timed runs come after,
# alone on the machine.
bench-callgrind: bench-check-tools $(BENCH_BIN)
	@$(MAKE) --no-print-directory -j2 $(IR_FILES) $(PROFILE_FILES)

bench: bench-check-tools bench-callgrind
	BENCH_IR_N=$(IR_N) BENCH_IR_FLOOR_N=$(IR_FLOOR_N) $(BENCH_BIN) run --out bench --callgrind-dir $(BENCH_OUT) \
	  --commit "$$(git describe --always --dirty 2>/dev/null || echo unknown)"

bench-quick: bench-check-tools $(BENCH_BIN)
	BENCH_IR_N=$(IR_N) BENCH_IR_FLOOR_N=$(IR_FLOOR_N) $(BENCH_BIN) run --quick --out bench --callgrind-dir $(BENCH_OUT) \
	  --commit "$$(git describe --always --dirty 2>/dev/null || echo unknown)"

bench-clean:
	rm -rf $(BENCH_OUT)

# The wasm engine as filter tests meet it: load time, warm replay of a 5-stream scenario, one
# request(); bench/wasm-results.json and the "Wasm engine" section of bench/RESULTS.md.
.PHONY: bench-wasm
bench-wasm: setup wasm
	node bench/wasm.mjs

# `make bench-envoy`: the same jobs in one real Envoy, envoy-js vs Lua, Wasm and a dynamic module.
include bench/envoy.mk
