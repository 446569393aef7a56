# The wasm engine: runtime/, quickjs-ng and the scripted Envoy model (test/host_stub/) built for
# wasm32-wasi with Debian bookworm's clang-14, lld-14, wasi-libc and libc++ for wasm32, into
# sdk/wasm/envoy-js.wasm, which @envoy-js/sdk ships (sdk/cli/wasm.mjs loads it). Included by the
# top-level Makefile. `make wasm` installs the toolchain when it is missing (Debian packages).
#
# Why clang's wasm32-wasi and not emscripten: the engine needs clocks, random bytes and stderr,
# so the module imports six WASI functions that sdk/cli/wasm.mjs provides in 80 lines; there is
# no JS glue file to ship and keep in step, and the same .wasm would run in any WASI host.

WASM_BUILD := build/wasm
WASM_OUT := sdk/wasm/envoy-js.wasm
WASM_CLANG := clang-14
WASM_CLANGXX := clang++-14
WASM_TARGET := --target=wasm32-wasi --sysroot=/usr
# No exceptions (runtime/ and the model use error returns); 4 MiB of C stack for the engine's
# 512 KiB JS stack limit and the native frames around it.
WASM_CFLAGS := $(WASM_TARGET) -Os -D_GNU_SOURCE -DNDEBUG -w
WASM_CXXFLAGS := $(WASM_TARGET) -std=c++20 -Os -fno-exceptions -fvisibility=hidden -Wall -Wextra \
                 -Wno-unused-parameter -Wno-missing-field-initializers $(WERROR) -I$(QJS_DIR)
WASM_LDFLAGS := $(WASM_TARGET) -mexec-model=reactor -Wl,-z,stack-size=4194304 -Wl,--strip-all
WASM_TOOLS_STAMP := $(WASM_BUILD)/.toolchain
WASM_PACKAGES := clang-14 lld-14 wasi-libc libc++-14-dev-wasm32 libc++abi-14-dev-wasm32 libclang-rt-14-dev-wasm32

WASM_MODEL_SRCS := test/host_stub/scripted_host.cc test/host_stub/scenario_json.cc wasm/exports.cc
WASM_OBJS := $(patsubst %.c,$(WASM_BUILD)/qjs/%.o,$(QJS_SRCS)) \
             $(patsubst runtime/%.cc,$(WASM_BUILD)/runtime/%.o,$(RUNTIME_SRCS)) \
             $(patsubst %.cc,$(WASM_BUILD)/%.o,$(WASM_MODEL_SRCS))

.PHONY: wasm wasm-toolchain
wasm: $(WASM_OUT)

wasm-toolchain: $(WASM_TOOLS_STAMP)
$(WASM_TOOLS_STAMP):
	scripts/install-debian-packages.sh "wasm toolchain" $(WASM_PACKAGES)
	@mkdir -p $(dir $@) && touch $@

# Objects rebuild when the flags change (a stale tree would otherwise keep objects built with
# older flags: -O2 objects made a 1.34 MB module instead of the -Os one's 1.0 MB).
WASM_FLAGS_STAMP := $(WASM_BUILD)/flags-$(shell echo '$(WASM_CFLAGS) $(WASM_CXXFLAGS)' | md5sum | cut -c1-12)
$(WASM_FLAGS_STAMP):
	@mkdir -p $(dir $@) && rm -f $(WASM_BUILD)/flags-* && touch $@

$(WASM_BUILD)/qjs/%.o: $(QJS_STAMP) $(WASM_FLAGS_STAMP) | $(WASM_TOOLS_STAMP)
	@mkdir -p $(dir $@)
	$(WASM_CLANG) $(WASM_CFLAGS) -c $(QJS_DIR)/$*.c -o $@

$(WASM_BUILD)/runtime/%.o: runtime/%.cc $(RUNTIME_HDRS) $(QJS_STAMP) $(WASM_FLAGS_STAMP) | $(WASM_TOOLS_STAMP)
	@mkdir -p $(dir $@)
	$(WASM_CLANGXX) $(WASM_CXXFLAGS) -c $< -o $@

$(WASM_BUILD)/%.o: %.cc $(RUNTIME_HDRS) $(wildcard test/host_stub/*.h) $(QJS_STAMP) $(WASM_FLAGS_STAMP) | $(WASM_TOOLS_STAMP)
	@mkdir -p $(dir $@)
	$(WASM_CLANGXX) $(WASM_CXXFLAGS) -c $< -o $@

$(WASM_OUT): $(WASM_OBJS)
	@mkdir -p $(dir $@)
	$(WASM_CLANGXX) $(WASM_LDFLAGS) $(WASM_OBJS) -o $@
	@echo "wasm engine: $@ $$(stat -c %s $@) bytes, $$(gzip -9 -c $@ | wc -c) gzipped"
