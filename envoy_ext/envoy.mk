# Make rules for the native Envoy extension (Bazel). Included by the Makefile.
#
#   make build-envoy BUILD_OPTS="--config=clang"   # //:envoy, Envoy + envoy.filters.http.quickjs
#   make test-envoy  BUILD_OPTS="..."              # the extension's Envoy-style tests
#   make lint-bazel                                 # buildifier, check mode, every Bazel file
#
# BUILD_OPTS goes to bazel verbatim. Building needs what building Envoy needs (see
# envoy_ext/filter/README.md); CI does not run build-envoy or test-envoy.

BAZEL ?= bazel
BUILD_OPTS ?=
BUILDIFIER := node_modules/.bin/buildifier
BAZEL_FILES := WORKSPACE BUILD.bazel \
	$(wildcard bazel/BUILD bazel/*.bzl bazel/*.BUILD) \
	$(shell find envoy_ext -name BUILD -o -name BUILD.bazel -o -name '*.bzl')

.PHONY: build-envoy test-envoy lint-bazel

# Envoy's Bazel options are checked in (bazel/envoy.bazelrc, imported by .bazelrc).
build-envoy:
	$(BAZEL) build $(BUILD_OPTS) //:envoy

test-envoy:
	$(BAZEL) test $(BUILD_OPTS) //envoy_ext/filter/...

lint-bazel: node-deps
	$(BUILDIFIER) -mode=check -lint=warn $(BAZEL_FILES)
