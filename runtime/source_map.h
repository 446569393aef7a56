// Source maps for error locations in Envoy's logs: a minimal reader of source map v3 (the
// `.map` that `envoy-js build` writes beside the bundle) and the rewrite of bundle locations
// ("filter.js:12:15", as QuickJS prints them in stacks and syntax errors) to
// "src/filter.ts:10:11 (filter.js:12:15)". The CLI (sdk/cli/sourcemap.mjs) writes the same
// format, and leaves text already mapped here alone.
//
// Read once per filter config on the main thread; immutable afterwards, so one map is shared
// by every worker engine of that config.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace envoy_js {

class SourceMap {
 public:
  // A place in an original source; line and column are 1-based.
  struct Position {
    std::string source;
    uint32_t line = 0;
    uint32_t column = 0;
  };

  // Parses a source map v3 JSON text ("version", "sources", optional "sourceRoot",
  // "mappings"). Index maps ("sections") are refused. Returns nullptr with *error set when
  // the text is not a usable map.
  static std::unique_ptr<const SourceMap> parse(std::string_view json, std::string* error);

  // The original position of a 1-based bundle position: the last mapped segment at or before
  // `column` on that line, or the line's first segment when `column` comes before it;
  // nullopt when the line has no mapping to a source.
  std::optional<Position> lookup(uint32_t line, uint32_t column) const;

  // Rewrites every "<bundleFilename>:L:C" in `text` that the map covers to
  // "<source>:L:C (<bundleFilename>:L:C)". A location that is part of a longer file name
  // ("myfilter.js:1:2") or already mapped is left as it is.
  std::string rewrite(std::string_view text, std::string_view bundleFilename) const;

  // Sources as shown in messages: sourceRoot + source with leading "./" and "../" removed,
  // so that "../src/filter.ts" (a map in dist/) reads "src/filter.ts".
  const std::vector<std::string>& sources() const { return sources_; }

 private:
  struct Segment {
    uint32_t generatedColumn;  // 0-based
    uint32_t source;
    uint32_t line;    // 0-based
    uint32_t column;  // 0-based
  };
  // Decodes the "mappings" string; false on malformed VLQ or an out-of-range index.
  bool decodeMappings(std::string_view mappings, std::string* error);

  std::vector<std::string> sources_;
  std::vector<std::vector<Segment>> lines_;  // per generated line, sorted by column
};

}  // namespace envoy_js
