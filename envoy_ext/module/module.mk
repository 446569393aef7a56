# The Envoy dynamic module: build/release/libenvoy_js.so (runtime + quickjs-ng + the adapter in
# envoy_ext/module/), and the ABI host stub that loads it the way Envoy does:
# build/release/abi_host (test/abi_host/). Plain make and the system compiler, no Bazel.
MODULE_SO := $(BUILD)/libenvoy_js.so
ABI_HOST := $(BUILD)/abi_host
MODULE_HDRS := $(wildcard envoy_ext/module/*.h)
# The adapter, one file per job (hooks, config, clock, worker, stream, ...).
MODULE_OBJS := $(patsubst envoy_ext/module/%.cc,$(BUILD)/module/%.o,$(wildcard envoy_ext/module/*.cc))

$(BUILD)/module/%.o: envoy_ext/module/%.cc $(MODULE_HDRS) $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(RUNTIME_CXXFLAGS) -c $< -o $@

# The glibc floor: the module must load on glibc GLIBC_FLOOR_MAX (2.31, the floor of the PyPI
# Envoy wheel, manylinux_2_31) even when built on a newer glibc. On x86_64, glibc_floor.c
# redirects (--wrap) the few symbols whose default version is newer to older versions of the
# same functions, or to equivalents of its own; see the comment there. The libraries those old
# versions lived in before glibc 2.34 are listed as needed (on 2.34+ they are empty stubs).
# `make check-glibc-floor` fails, naming the symbols, when anything newer is needed.
GLIBC_FLOOR_MAX := 2.31
comma := ,
GLIBC_FLOOR_WRAPPED := pthread_create pthread_detach pthread_join pthread_once pthread_key_create \
  __pthread_key_create pthread_key_delete pthread_getspecific pthread_setspecific \
  pthread_condattr_setclock pthread_cond_clockwait dlsym hypot fstat64 __libc_single_threaded \
  arc4random _dl_find_object
ifneq ($(filter x86_64-%,$(shell $(CC) -dumpmachine)),)
GLIBC_FLOOR_OBJ := $(BUILD)/module/glibc_floor.o
GLIBC_FLOOR_LDFLAGS := $(addprefix -Wl$(comma)--wrap=,$(GLIBC_FLOOR_WRAPPED)) \
  -Wl,--push-state,--no-as-needed -l:libdl.so.2 -l:libpthread.so.0 -Wl,--pop-state
endif

$(BUILD)/module/glibc_floor.o: envoy_ext/module/glibc_floor.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -fPIC -fvisibility=hidden -Wall -Wextra $(WERROR) -c $< -o $@

# Only the envoy_dynamic_module_on_* hooks are exported; Envoy's callbacks stay undefined and
# resolve from Envoy at load time. libstdc++ is linked in (and hidden) so that the object loads
# into any Envoy build, whatever C++ library that one uses. -z nodelete: the timer thread and
# the workers' thread_local engines run this code until the process exits, so a dlclose must
# not unload it.
$(MODULE_SO): $(MODULE_OBJS) $(GLIBC_FLOOR_OBJ) $(RUNTIME_LIB) envoy_ext/module/exports.map envoy_ext/module/module.mk
	$(CXX) -shared -o $@ $(MODULE_OBJS) $(GLIBC_FLOOR_OBJ) $(RUNTIME_LIB) -static-libstdc++ -static-libgcc -Wl,--exclude-libs,ALL -Wl,--version-script=envoy_ext/module/exports.map -Wl,-z,nodelete $(GLIBC_FLOOR_LDFLAGS) -ldl -lpthread -lm

.PHONY: check-glibc-floor
check-glibc-floor: $(MODULE_SO)
	GLIBC_FLOOR_MAX=$(GLIBC_FLOOR_MAX) scripts/check-glibc-floor.sh $(MODULE_SO)

$(BUILD)/abi_host.o/%.o: test/abi_host/%.cc $(wildcard test/abi_host/*.h) $(wildcard test/host_stub/*.h) $(MODULE_HDRS) $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(RUNTIME_CXXFLAGS) -c $< -o $@

# The scripted Envoy model (test/host_stub/) the stub shares with every other driver.
$(BUILD)/abi_host.o/scripted/%.o: test/host_stub/%.cc $(wildcard test/host_stub/*.h) $(RUNTIME_HDRS) $(QJS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(RUNTIME_CXXFLAGS) -c $< -o $@

ABI_HOST_OBJS := $(patsubst test/abi_host/%.cc,$(BUILD)/abi_host.o/%.o,$(wildcard test/abi_host/*.cc)) \
                 $(BUILD)/abi_host.o/scripted/scripted_host.o $(BUILD)/abi_host.o/scripted/scenario_json.o

# -rdynamic: the callbacks the module calls are exported from the executable, as Envoy does.
$(ABI_HOST): $(ABI_HOST_OBJS) $(RUNTIME_LIB)
	$(CXX) -rdynamic -o $@ $(ABI_HOST_OBJS) $(RUNTIME_LIB) -ldl -lpthread -lm

# abi_host plays Envoy 1.39/1.40; abi_host_1_38 plays 1.38, whose exported callbacks lack the
# ones 1.39 added (envoy_1_39.cc). `abi_host --envoy 1.38` runs it.
ABI_HOST_1_38 := $(BUILD)/abi_host_1_38
ABI_HOST_1_38_OBJS := $(filter-out $(BUILD)/abi_host.o/envoy_1_39.o,$(ABI_HOST_OBJS))
$(ABI_HOST_1_38): $(ABI_HOST_1_38_OBJS) $(RUNTIME_LIB)
	$(CXX) -rdynamic -o $@ $(ABI_HOST_1_38_OBJS) $(RUNTIME_LIB) -ldl -lpthread -lm

.PHONY: module
module: $(MODULE_SO) $(ABI_HOST) $(ABI_HOST_1_38)

test: module
