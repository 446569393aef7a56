// ctx.metadata (DynamicMetadata) and the conversions of MetadataValue (host.h): from and to JS
// values, and to JSON text for hosts that can only store text.
//
// JS -> MetadataValue follows JSON.stringify where JSON has an answer, and is stricter where
// JSON.stringify would silently change the data:
//  - null, booleans, strings, arrays and objects (own enumerable string keys, in order) map
//    one to one; a toJSON() method is called (a Date becomes its ISO string) and its result
//    converted;
//  - an object property whose value is undefined is left out, as JSON.stringify does;
//  - a TypeError that names where the value is ("value.user.roles[2]") for everything else:
//    undefined (the whole value or an array element), functions, symbols, BigInts, NaN and
//    ±Infinity (JSON.stringify would write null), a cycle, and nesting deeper than
//    kMetadataMaxDepth levels.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "bind_util.h"

namespace envoy_js {
namespace {

constexpr size_t kMetadataMaxDepth = 64;

constexpr const char* kJsonData =
    "metadata values are JSON data: strings, finite numbers, booleans, null, arrays and plain objects";

bool isIdentifier(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

class FromJs {
 public:
  explicit FromJs(JSContext* ctx) : ctx_(ctx) {}

  bool convert(JSValueConst v, MetadataValue* out, bool callToJson = true) {
    using Kind = MetadataValue::Kind;
    if (JS_IsNull(v)) {
      out->kind = Kind::Null;
      return true;
    }
    if (JS_IsBool(v)) {
      out->kind = Kind::Bool;
      out->boolean = JS_ToBool(ctx_, v);
      return true;
    }
    if (JS_IsNumber(v)) {
      double d = 0;
      if (JS_ToFloat64(ctx_, &d, v) != 0) return false;
      if (std::isnan(d)) return fail("NaN");
      if (std::isinf(d)) return fail("an infinite number");
      out->kind = Kind::Number;
      out->number = d;
      return true;
    }
    if (JS_IsString(v)) {
      CString s(ctx_, v);
      if (!s.ptr) return false;
      out->kind = Kind::String;
      out->string.assign(s.ptr, s.len);
      return true;
    }
    if (JS_IsUndefined(v)) return fail("undefined");
    if (JS_IsSymbol(v)) return fail("a symbol");
    if (JS_IsBigInt(v)) return fail("a BigInt");
    if (JS_IsFunction(ctx_, v)) return fail("a function");
    if (!JS_IsObject(v)) return fail("not JSON data");
    if (callToJson) {
      JSValue toJson = JS_GetPropertyStr(ctx_, v, "toJSON");
      if (JS_IsException(toJson)) return false;
      if (JS_IsFunction(ctx_, toJson)) {
        JSValue key = JS_NewStringLen(ctx_, key_.data(), key_.size());
        JSValue replaced = JS_Call(ctx_, toJson, v, 1, &key);
        JS_FreeValue(ctx_, key);
        JS_FreeValue(ctx_, toJson);
        if (JS_IsException(replaced)) return false;
        bool ok = convert(replaced, out, false);
        JS_FreeValue(ctx_, replaced);
        return ok;
      }
      JS_FreeValue(ctx_, toJson);
    }
    void* self = JS_VALUE_GET_PTR(v);
    for (void* ancestor : ancestors_) {
      if (ancestor == self) return fail("an object that contains itself (a cycle)");
    }
    if (ancestors_.size() >= kMetadataMaxDepth) return fail("nested too deep (more than 64 levels)");
    ancestors_.push_back(self);
    bool ok = JS_IsArray(v) ? convertList(v, out) : convertObject(v, out);
    ancestors_.pop_back();
    return ok;
  }

 private:
  bool fail(const char* what) {
    // quickjs formats messages into 256 bytes: a long path keeps its two ends.
    std::string path = path_;
    if (path.size() > 80) {
      size_t tail = path.find_first_of(".[", path.size() - 38);
      path = path.substr(0, path.find_last_of(".[", 38)) + "..." +
             path.substr(tail == std::string::npos ? path.size() : tail);
    }
    JS_ThrowTypeError(ctx_, "metadata.set(): %s is %s: %s", path.c_str(), what, kJsonData);
    return false;
  }

  bool convertList(JSValueConst v, MetadataValue* out) {
    out->kind = MetadataValue::Kind::List;
    int64_t length = 0;
    if (JS_GetLength(ctx_, v, &length) != 0) return false;
    size_t pathLength = path_.size();
    for (int64_t i = 0; i < length; i++) {
      JSValue item = JS_GetPropertyInt64(ctx_, v, i);
      if (JS_IsException(item)) return false;
      path_ += "[" + std::to_string(i) + "]";
      key_ = std::to_string(i);
      out->list.emplace_back();
      bool ok = convert(item, &out->list.back());
      JS_FreeValue(ctx_, item);
      if (!ok) return false;
      path_.resize(pathLength);
    }
    return true;
  }

  bool convertObject(JSValueConst v, MetadataValue* out) {
    out->kind = MetadataValue::Kind::Object;
    JSPropertyEnum* props = nullptr;
    uint32_t count = 0;
    if (JS_GetOwnPropertyNames(ctx_, &props, &count, v, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) != 0) return false;
    size_t pathLength = path_.size();
    bool ok = true;
    for (uint32_t i = 0; ok && i < count; i++) {
      JSValue item = JS_GetProperty(ctx_, v, props[i].atom);
      if (JS_IsException(item)) {
        ok = false;
        break;
      }
      if (JS_IsUndefined(item)) continue;  // left out, as JSON.stringify does
      JSValue name = JS_AtomToString(ctx_, props[i].atom);
      CString key(ctx_, name);
      JS_FreeValue(ctx_, name);
      if (!key.ptr) {
        JS_FreeValue(ctx_, item);
        ok = false;
        break;
      }
      key_.assign(key.view());
      path_ += isIdentifier(key_) ? "." + key_ : "[\"" + key_ + "\"]";
      out->object.emplace_back(key_, MetadataValue{});
      ok = convert(item, &out->object.back().second);
      JS_FreeValue(ctx_, item);
      if (ok) path_.resize(pathLength);
    }
    JS_FreePropertyEnum(ctx_, props, count);
    return ok;
  }

  JSContext* ctx_;
  std::string path_ = "value";    // where the value being converted is, for errors
  std::string key_;               // its key in its parent (toJSON's argument)
  std::vector<void*> ancestors_;  // the objects being converted around it
};

JSValue toJs(JSContext* ctx, const MetadataValue& v, size_t depth) {
  using Kind = MetadataValue::Kind;
  switch (v.kind) {
    case Kind::Null: return JS_NULL;
    case Kind::Bool: return JS_NewBool(ctx, v.boolean);
    case Kind::Number: return JS_NewNumber(ctx, v.number);
    case Kind::String: return JS_NewStringLen(ctx, v.string.data(), v.string.size());
    case Kind::List:
    case Kind::Object: break;
  }
  if (depth >= kMetadataMaxDepth) {
    return JS_ThrowTypeError(ctx, "metadata.get(): the value is nested too deep (more than 64 levels)");
  }
  bool list = v.kind == Kind::List;
  JSValue out = list ? JS_NewArray(ctx) : JS_NewObject(ctx);
  if (JS_IsException(out)) return out;
  for (size_t i = 0, n = list ? v.list.size() : v.object.size(); i < n; i++) {
    JSValue item = toJs(ctx, list ? v.list[i] : v.object[i].second, depth + 1);
    if (JS_IsException(item)) {
      JS_FreeValue(ctx, out);
      return item;
    }
    int r = 0;
    if (list) {
      r = JS_DefinePropertyValueUint32(ctx, out, static_cast<uint32_t>(i), item, JS_PROP_C_W_E);
    } else {
      const std::string& key = v.object[i].first;
      JSAtom atom = JS_NewAtomLen(ctx, key.data(), key.size());
      r = atom == JS_ATOM_NULL ? -1 : JS_DefinePropertyValue(ctx, out, atom, item, JS_PROP_C_W_E);
      if (atom == JS_ATOM_NULL) JS_FreeValue(ctx, item);
      JS_FreeAtom(ctx, atom);
    }
    if (r < 0) {
      JS_FreeValue(ctx, out);
      return JS_EXCEPTION;
    }
  }
  return out;
}

// ---- JSON text -----------------------------------------------------------------------------

// As Number.prototype.toString prints it: the shortest digits that read back as `d`, in the
// ECMAScript layout (123, 0.001, 1e+21, 1.5e-7).
void appendJsonNumber(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  if (d == 0) {
    out += '0';  // -0 too, as JSON.stringify
    return;
  }
  if (d < 0) {
    out += '-';
    d = -d;
  }
  char text[40];
  for (int precision = 1; precision <= 17; precision++) {
    snprintf(text, sizeof text, "%.*e", precision - 1, d);
    if (std::strtod(text, nullptr) == d) break;
  }
  std::string digits;
  const char* p = text;
  for (; *p != '\0' && *p != 'e'; p++) {
    if (*p >= '0' && *p <= '9') digits += *p;
  }
  int exponent = *p == 'e' ? std::atoi(p + 1) : 0;
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  int k = static_cast<int>(digits.size());
  int n = exponent + 1;  // d = 0.<digits> * 10^n
  if (k <= n && n <= 21) {
    out += digits;
    out.append(static_cast<size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    out.append(digits, 0, static_cast<size_t>(n));
    out += '.';
    out.append(digits, static_cast<size_t>(n));
  } else if (-6 < n && n <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-n), '0');
    out += digits;
  } else {
    out += digits[0];
    if (k > 1) {
      out += '.';
      out.append(digits, 1);
    }
    out += n - 1 >= 0 ? "e+" : "e-";
    out += std::to_string(std::abs(n - 1));
  }
}

void appendJsonString(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  auto escape = [&](unsigned code) {
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(code >> shift) & 0xf];
  };
  out += '"';
  for (size_t i = 0; i < s.size(); i++) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          escape(c);
        } else if (c == 0xed && i + 2 < s.size() && (static_cast<unsigned char>(s[i + 1]) & 0xe0) == 0xa0) {
          // A lone surrogate, as quickjs keeps it in UTF-8 (WTF-8): escaped, as JSON.stringify does.
          escape(0xd000u | ((static_cast<unsigned char>(s[i + 1]) & 0x3fu) << 6) |
                 (static_cast<unsigned char>(s[i + 2]) & 0x3fu));
          i += 2;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void appendJson(std::string& out, const MetadataValue& v) {
  using Kind = MetadataValue::Kind;
  switch (v.kind) {
    case Kind::Null: out += "null"; return;
    case Kind::Bool: out += v.boolean ? "true" : "false"; return;
    case Kind::Number: appendJsonNumber(out, v.number); return;
    case Kind::String: appendJsonString(out, v.string); return;
    case Kind::List:
      out += '[';
      for (size_t i = 0; i < v.list.size(); i++) {
        if (i > 0) out += ',';
        appendJson(out, v.list[i]);
      }
      out += ']';
      return;
    case Kind::Object:
      out += '{';
      for (size_t i = 0; i < v.object.size(); i++) {
        if (i > 0) out += ',';
        appendJsonString(out, v.object[i].first);
        out += ':';
        appendJson(out, v.object[i].second);
      }
      out += '}';
      return;
  }
}

// ---- DynamicMetadata ---------------------------------------------------------------------------

// The stream and (namespace, key) of a ctx.metadata call; nullptr after throwing.
StreamState* metadataCall(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv, std::string* ns,
                          std::string* key) {
  StreamState* s = streamOf(ctx, thisVal, engineOf(ctx)->classes.metadata);
  if (!s || !stringArg(ctx, argc, argv, 0, "metadata namespace", ns) ||
      !stringArg(ctx, argc, argv, 1, "metadata key", key)) {
    return nullptr;
  }
  return s;
}

JSValue js_metadata_get(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  std::string ns, key;
  StreamState* s = metadataCall(ctx, thisVal, argc, argv, &ns, &key);
  if (!s) return JS_EXCEPTION;
  if (s->host == nullptr) return throwStreamGone(ctx);
  std::optional<MetadataValue> value = s->host->getMetadata(ns, key);
  if (!value) return JS_UNDEFINED;
  return toJs(ctx, *value, 0);
}

JSValue js_metadata_set(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  std::string ns, key;
  StreamState* s = metadataCall(ctx, thisVal, argc, argv, &ns, &key);
  if (!s) return JS_EXCEPTION;
  MetadataValue value;
  if (!FromJs(ctx).convert(argc > 2 ? argv[2] : JS_UNDEFINED, &value)) return JS_EXCEPTION;
  if (s->host == nullptr) return throwStreamGone(ctx);
  s->host->setMetadata(ns, key, value);
  return JS_UNDEFINED;
}

const JSCFunctionListEntry kMetadataProto[] = {
    JS_CFUNC_DEF("get", 2, js_metadata_get),
    JS_CFUNC_DEF("set", 3, js_metadata_set),
};

}  // namespace

JSValue metadataValueToJs(JSContext* ctx, const MetadataValue& value) { return toJs(ctx, value, 0); }

std::string metadataToJson(const MetadataValue& value) {
  std::string out;
  appendJson(out, value);
  return out;
}

bool registerMetadataClass(Engine::Impl* e) {
  return defineClass(e, &e->classes.metadata, "DynamicMetadata", streamWrapperFinalizer, kMetadataProto,
                     countOf(kMetadataProto));
}

}  // namespace envoy_js
