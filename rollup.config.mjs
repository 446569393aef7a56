// `npx rollup -c`: bundles one filter exactly as `envoy-js build` does (same
// function, same plugins, same type check).
//   ENVOY_JS_ENTRY       entry file   (default samples/hello/filter.ts)
//   ENVOY_JS_OUT         output file  (default dist/filter.js)
//   ENVOY_JS_TYPECHECK=0 skip the type check
import { createRollupOptions } from "./sdk/cli/build.mjs";

export default () =>
  createRollupOptions({
    entry: process.env.ENVOY_JS_ENTRY ?? "samples/hello/filter.ts",
    outFile: process.env.ENVOY_JS_OUT ?? "dist/filter.js",
    typecheck: process.env.ENVOY_JS_TYPECHECK !== "0",
  });
