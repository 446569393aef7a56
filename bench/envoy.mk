# `make bench-envoy`: envoy-js side by side with Envoy's Lua filter, a proxy-wasm Go filter and a
# native dynamic module (Envoy's Go SDK) on the same four jobs in one real Envoy (the first pin
# of scripts/envoy-versions.txt, or BENCH_ENVOY_VERSION=...), plus the no-filter baseline.
# Writes bench/envoy-results.json, bench/envoy-chart.svg and the "Envoy side by side" section of
# bench/RESULTS.md; about 10 minutes on 2 cores. Installs what it needs: Envoy (make envoy), the
# module (make module), h2load and taskset from Debian (bench/envoy/install-tools.sh); Go comes
# from the machine, the Go modules of the peers from the Go module proxy.
#
#   make bench-envoy                    the whole run (3 rounds)
#   make bench-envoy-ir                 just the instruction counts (callgrind), ~4 minutes
#   make bench-envoy-peers              just build the Wasm and dynamic-module peers
#   BENCH_ENVOY_ROUNDS=1 BENCH_ENVOY_SCALE=0.2 make bench-envoy     a quick look (noisier)
#   BENCH_ENVOY_FILTERS=none,envoy_js make bench-envoy              a partial run; writes nothing
BENCH_ENVOY_OUT := build/bench-envoy
BENCH_ENVOY_WASM := $(BENCH_ENVOY_OUT)/peer.wasm
BENCH_ENVOY_DYNMOD := $(BENCH_ENVOY_OUT)/modules/libbench_dynmod.so
BENCH_ENVOY_GO_STAMP := $(BENCH_ENVOY_OUT)/go-path

.PHONY: bench-envoy bench-envoy-ir bench-envoy-peers bench-envoy-tools

bench-envoy-tools:
	@mkdir -p $(BENCH_ENVOY_OUT)
	@bench/envoy/install-tools.sh > $(BENCH_ENVOY_GO_STAMP).tmp && mv $(BENCH_ENVOY_GO_STAMP).tmp $(BENCH_ENVOY_GO_STAMP)

# The proxy-wasm peer: Go's own wasip1 target (go:wasmexport, Go >= 1.24), no TinyGo.
$(BENCH_ENVOY_WASM): $(wildcard bench/peers/wasm_go/*.go) bench/peers/wasm_go/go.mod bench/peers/wasm_go/go.sum | bench-envoy-tools
	cd bench/peers/wasm_go && GOOS=wasip1 GOARCH=wasm "$$(cat $(CURDIR)/$(BENCH_ENVOY_GO_STAMP))" build -mod=readonly -buildmode=c-shared -o $(CURDIR)/$@ .

# The native peer: a C shared object with Envoy's dynamic-module hooks (cgo), like libenvoy_js.so.
$(BENCH_ENVOY_DYNMOD): $(wildcard bench/peers/dynmod_go/*.go) bench/peers/dynmod_go/go.mod bench/peers/dynmod_go/go.sum | bench-envoy-tools
	@mkdir -p $(dir $@)
	cd bench/peers/dynmod_go && CGO_ENABLED=1 "$$(cat $(CURDIR)/$(BENCH_ENVOY_GO_STAMP))" build -mod=readonly -buildmode=c-shared -o $(CURDIR)/$@ .

bench-envoy-peers: $(BENCH_ENVOY_WASM) $(BENCH_ENVOY_DYNMOD)

# Instructions per request on the worker (callgrind; bench/envoy/instructions.mjs, ~4 minutes):
# build/bench-envoy/instructions.json, which bench-envoy's report uses to decide the CPU targets.
bench-envoy-ir: bench-envoy-tools envoy module node-deps bench-envoy-peers
	node bench/envoy/instructions.mjs

# The driver and h2load on core 1; it starts the Envoy under test on core 0.
bench-envoy: bench-envoy-ir
	taskset -c 1 node bench/envoy/run.mjs
