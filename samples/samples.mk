# Rules of the samples issue, included by the Makefile: the samples' own target, and the
# standalone test of the runtime's source map reader (runtime/source_map.{h,cc}).
SOURCE_MAP_TEST := $(BUILD)/test/source_map_test

$(SOURCE_MAP_TEST): test/runtime/source_map_test.cc $(RUNTIME_LIB) $(RUNTIME_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(RUNTIME_CXXFLAGS) $< $(RUNTIME_LIB) -o $@ -lm -lpthread

.PHONY: source-map-test test-samples
source-map-test: $(SOURCE_MAP_TEST)

# The samples' uvu tests: each builds its filter with the CLI and runs it on the wasm engine.
test-samples: setup wasm
	node node_modules/uvu/bin.js samples '\.test\.mjs$$'

# `make test` runs source_map.test.mjs, which runs this program.
test: $(SOURCE_MAP_TEST)
