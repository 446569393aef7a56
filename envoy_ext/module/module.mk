# The Envoy dynamic module: build/release/libenvoy_js.so (runtime + quickjs-ng + the adapter in
# envoy_ext/module/), and the ABI host stub that loads it the way Envoy does:
# build/release/abi_host (test/abi_host/). Plain make and the system compiler, no Bazel.
MODULE_SO := $(BUILD)/libenvoy_js.so
ABI_HOST := $(BUILD)/abi_host
MODULE_HDRS := $(wildcard envoy_ext/module/*.h)

$(BUILD)/module/%.o: envoy_ext/module/%.cc $(MODULE_HDRS) $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(RUNTIME_CXXFLAGS) -c $< -o $@

# Only the envoy_dynamic_module_on_* hooks are exported; Envoy's callbacks stay undefined and
# resolve from Envoy at load time. libstdc++ is linked in (and hidden) so that the object loads
# into any Envoy build, whatever C++ library that one uses. -z nodelete: the timer thread and
# the workers' thread_local engines run this code until the process exits, so a dlclose must
# not unload it.
$(MODULE_SO): $(BUILD)/module/module.o $(RUNTIME_LIB) envoy_ext/module/exports.map
	$(CXX) -shared -o $@ $< $(RUNTIME_LIB) -static-libstdc++ -static-libgcc -Wl,--exclude-libs,ALL -Wl,--version-script=envoy_ext/module/exports.map -Wl,-z,nodelete -ldl -lpthread -lm

$(BUILD)/abi_host.o/%.o: test/abi_host/%.cc $(wildcard test/abi_host/*.h) test/host_stub/scripted_host.h $(MODULE_HDRS) $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(RUNTIME_CXXFLAGS) -c $< -o $@

$(BUILD)/abi_host.o/scripted_host.o: test/host_stub/scripted_host.cc test/host_stub/scripted_host.h $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(RUNTIME_CXXFLAGS) -c $< -o $@

ABI_HOST_OBJS := $(patsubst test/abi_host/%.cc,$(BUILD)/abi_host.o/%.o,$(wildcard test/abi_host/*.cc)) $(BUILD)/abi_host.o/scripted_host.o

# -rdynamic: the callbacks the module calls are exported from the executable, as Envoy does.
$(ABI_HOST): $(ABI_HOST_OBJS) $(RUNTIME_LIB)
	$(CXX) -rdynamic -o $@ $(ABI_HOST_OBJS) $(RUNTIME_LIB) -ldl -lpthread -lm

.PHONY: module
module: $(MODULE_SO) $(ABI_HOST)

test: module
