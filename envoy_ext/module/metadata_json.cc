// JSON scalars for dynamic metadata: Envoy's metadata holds typed scalars, the runtime speaks
// JSON text (StreamHost::getMetadata/setMetadata). Moved verbatim from module.cc.
#include "metadata_json.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace envoy_js::module {

std::string jsonQuote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char esc[8];
          snprintf(esc, sizeof esc, "\\u%04x", c);
          out += esc;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string jsonNumber(double d) {
  if (!std::isfinite(d)) return "null";
  char text[32];
  snprintf(text, sizeof text, "%.17g", d);
  return text;
}

void appendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

JsonScalar parseJsonScalar(std::string_view text) {
  JsonScalar out;
  auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  };
  std::string_view t = trim(text);
  if (t == "true" || t == "false") {
    out.kind = JsonScalar::Bool;
    out.boolean = t == "true";
    return out;
  }
  if (!t.empty() && (t.front() == '-' || std::isdigit(static_cast<unsigned char>(t.front())))) {
    std::string z(t);
    char* end = nullptr;
    double d = std::strtod(z.c_str(), &end);
    if (end == z.c_str() + z.size()) {
      out.kind = JsonScalar::Number;
      out.number = d;
    }
    return out;
  }
  if (t.size() < 2 || t.front() != '"' || t.back() != '"') return out;
  std::string s;
  auto hex4 = [](std::string_view h, uint32_t* v) {
    if (h.size() < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; i++) {
      char c = h[i];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) return false;
      *v = *v * 16 + static_cast<uint32_t>(d);
    }
    return true;
  };
  std::string_view body = t.substr(1, t.size() - 2);
  for (size_t i = 0; i < body.size(); i++) {
    char c = body[i];
    if (c == '"') return out;  // an unescaped quote: not one string
    if (c != '\\') {
      s += c;
      continue;
    }
    if (++i >= body.size()) return out;
    switch (body[i]) {
      case '"': s += '"'; break;
      case '\\': s += '\\'; break;
      case '/': s += '/'; break;
      case 'b': s += '\b'; break;
      case 'f': s += '\f'; break;
      case 'n': s += '\n'; break;
      case 'r': s += '\r'; break;
      case 't': s += '\t'; break;
      case 'u': {
        uint32_t cp = 0;
        if (!hex4(body.substr(i + 1), &cp)) return out;
        i += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < body.size() && body[i + 1] == '\\' && body[i + 2] == 'u') {
          uint32_t lo = 0;
          if (hex4(body.substr(i + 3), &lo) && lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          }
        }
        appendUtf8(s, cp);
        break;
      }
      default: return out;
    }
  }
  out.kind = JsonScalar::String;
  out.string = std::move(s);
  return out;
}

}  // namespace envoy_js::module
