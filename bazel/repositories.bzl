"""External repositories of envoy-js's Bazel build: quickjs-ng and the pinned Envoy."""

load("@bazel_tools//tools/build_defs/repo:http.bzl", "http_archive")

# Envoy v1.38.2: the commit the tag v1.38.2 points to, and the sha256 of GitHub's
# archive/<commit>.tar.gz. Both are exactly what pomerium/envoy-custom pins in its commit
# 744774d "update envoy to 1.38.2" (WORKSPACE `envoy_version` and `sha256`, same .tar.gz URL
# form; its tools/update_envoy.sh derives them from the tag). Later 1.38.x patch releases
# exist: to move, set that tag's commit and archive sha256 here and copy the tag's
# .bazelversion (7.7.1 for v1.38.2).
ENVOY_COMMIT = "f387231af8dd7274e37c5ae2cc797cb09a948818"  # v1.38.2
ENVOY_SHA256 = "af833ff8f9799499b44dee4276dad5fd5785638e73cb17ed38718565e49c7a5a"

# quickjs-ng v0.17.0, the version runtime/ is written for (scripts/fetch-quickjs.sh pins the
# same tarball for the Makefile build).
QUICKJS_NG_VERSION = "0.17.0"
QUICKJS_NG_SHA256 = "559bc4c420475e55c7ab4510adbc562f55d7524d75e8e89d79ce4bb02f5687d9"

def envoy_js_repositories():
    """Declares @envoy and @quickjs_ng. Call first in WORKSPACE."""

    # Envoy as an external repository, in the style of envoyproxy/envoy-filter-example (which
    # uses a local checkout instead). A local checkout can replace it without editing this
    # file: `--override_repository=envoy=/path/to/envoy`.
    http_archive(
        name = "envoy",
        sha256 = ENVOY_SHA256,
        strip_prefix = "envoy-" + ENVOY_COMMIT,
        url = "https://github.com/envoyproxy/envoy/archive/" + ENVOY_COMMIT + ".tar.gz",
    )

    http_archive(
        name = "quickjs_ng",
        build_file = Label("//bazel:quickjs_ng.BUILD"),
        sha256 = QUICKJS_NG_SHA256,
        strip_prefix = "quickjs-" + QUICKJS_NG_VERSION,
        url = "https://github.com/quickjs-ng/quickjs/archive/refs/tags/v" + QUICKJS_NG_VERSION + ".tar.gz",
    )
