// JSON scalars for dynamic metadata (metadata_json.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace envoy_js::module {

std::string jsonQuote(std::string_view s);
std::string jsonNumber(double d);
void appendUtf8(std::string& out, uint32_t cp);

struct JsonScalar {
  enum Kind { String, Number, Bool, Other } kind = Other;
  std::string string;
  double number = 0;
  bool boolean = false;
};

// Reads a JSON text that is one string, number or boolean; anything else is Other.
JsonScalar parseJsonScalar(std::string_view text);

}  // namespace envoy_js::module
