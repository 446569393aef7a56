# Lint and format, included by the Makefile. `make test` runs `make lint` as one of its suites.
#
#   make lint          lint-js, lint-bazel and lint-format; fails when any of them fails
#   make lint-js       Biome's linter over our JS and TS (biome.jsonc says which files, which rules)
#   make lint-format   our C/C++ (clang-format-14, .clang-format) and JS/TS (Biome) need no change;
#                      lists each file that would change and how many lines
#   make format        applies both formatters in place
#   make lint-bazel    buildifier over the Bazel files (envoy_ext/envoy.mk)
#
# -Werror in every build of our own C and C++ is the other gate (WERROR in the Makefile).
# Tools come from the project's files: Biome is an npm devDependency (pinned), clang-format-14 a
# Debian package that scripts/install-debian-packages.sh installs when it is missing.

CLANG_FORMAT := clang-format-14
BIOME := node_modules/.bin/biome
# Our own C and C++ only, never third_party/.
FORMAT_CPP := $(sort $(wildcard runtime/*.cc runtime/*.h \
  envoy_ext/*/*.cc envoy_ext/*/*.h envoy_ext/*/*.c envoy_ext/*/test/*.cc \
  wasm/*.cc wasm/*.h test/host_stub/*.cc test/host_stub/*.h test/reliability/*.cc test/reliability/*.h \
  test/abi_host/*.cc test/abi_host/*.h test/runtime/*.cc bench/*.cc bench/*.h))

.PHONY: lint lint-tools lint-js lint-format format

lint-tools: node-deps
	@scripts/install-debian-packages.sh lint $(CLANG_FORMAT)

# Every check runs even when an earlier one failed, so one run shows all that is wrong.
lint: lint-tools
	@status=0; for t in lint-js lint-bazel lint-format; do \
	  echo "== $$t"; $(MAKE) --no-print-directory $$t || status=1; done; \
	  [ $$status -eq 0 ] && echo "lint: all checks passed" || echo "lint: FAILED (see above)"; exit $$status

lint-js: node-deps
	$(BIOME) lint --diagnostic-level=warn --error-on-warnings .

lint-format: lint-tools
	@scripts/check-format.sh $(CLANG_FORMAT) $(BIOME) $(FORMAT_CPP)

format: lint-tools
	$(CLANG_FORMAT) -i --style=file $(FORMAT_CPP)
	$(BIOME) format --write .
