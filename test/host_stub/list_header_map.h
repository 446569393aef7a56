// The header map the test hosts share: Envoy's semantics (lower-case names, insertion order,
// repeated names allowed, set removes them all and adds one at the end) on a plain vector.
#pragma once

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../../runtime/host.h"

namespace envoy_js::stub {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Envoy's header maps are case-insensitive with lower-case keys and keep insertion order.
class ListHeaderMap : public HeaderMap {
 public:
  explicit ListHeaderMap(HeaderList list) : list_(std::move(list)) {
    for (auto& [k, v] : list_)
      std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  }
  size_t get(std::string_view name, size_t index, std::string_view* value) const override {
    size_t n = 0;
    for (const auto& [k, v] : list_) {
      if (k != name) continue;
      if (n == index) *value = v;
      n++;
    }
    return n;
  }
  void forEach(Visitor fn, void* opaque) const override {
    for (const auto& [k, v] : list_) fn(opaque, k, v);
  }
  size_t size() const override { return list_.size(); }
  // The module's set_header is Envoy's setCopy(): remove() every entry of the name, then
  // addCopy() one, which HeaderList::insert puts at the end (a pseudo-header: after the last
  // pseudo-header). Inline (built-in) headers too: removeInline() drops their entry and
  // maybeCreateInline() inserts a new one the same way.
  void set(std::string_view name, std::string_view value) override {
    remove(name);
    append(name, value);
  }
  // addCopy() of a new entry: HeaderList::insert, pseudo-headers before every other header.
  void append(std::string_view name, std::string_view value) override {
    auto at = list_.end();
    if (isPseudo(name)) at = std::find_if(list_.begin(), list_.end(), [](auto& e) { return !isPseudo(e.first); });
    list_.emplace(at, std::string(name), std::string(value));
  }
  // The value of an entry that stays where it is (Envoy appends to an inline header's value in
  // place, and its codec builds one entry of repeated inline headers where the first one was):
  // the first entry of the name gets `value`, the others go; a new entry when there is none.
  void replaceInPlace(std::string_view name, std::string_view value) {
    auto it = std::find_if(list_.begin(), list_.end(), [&](auto& e) { return e.first == name; });
    if (it == list_.end()) {
      append(name, value);
      return;
    }
    it->second = std::string(value);
    auto first = it - list_.begin();
    list_.erase(std::remove_if(list_.begin() + first + 1, list_.end(), [&](auto& e) { return e.first == name; }),
                list_.end());
  }
  void remove(std::string_view name) override {
    list_.erase(std::remove_if(list_.begin(), list_.end(), [&](auto& e) { return e.first == name; }), list_.end());
  }
  const HeaderList& list() const { return list_; }
  static bool isPseudo(std::string_view name) { return !name.empty() && name[0] == ':'; }

 private:
  HeaderList list_;
};

}  // namespace envoy_js::stub
