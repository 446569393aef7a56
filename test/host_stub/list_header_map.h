// The header map the test hosts share: Envoy's semantics (lower-case names, insertion order,
// repeated names allowed, set replaces the first and drops the rest) on a plain vector.
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
    for (auto& [k, v] : list_) std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
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
  void set(std::string_view name, std::string_view value) override {
    auto it = std::find_if(list_.begin(), list_.end(), [&](auto& e) { return e.first == name; });
    if (it == list_.end()) {
      list_.emplace_back(std::string(name), std::string(value));
      return;
    }
    it->second = std::string(value);
    auto first = it - list_.begin();
    list_.erase(std::remove_if(list_.begin() + first + 1, list_.end(), [&](auto& e) { return e.first == name; }),
                list_.end());
  }
  void append(std::string_view name, std::string_view value) override {
    list_.emplace_back(std::string(name), std::string(value));
  }
  void remove(std::string_view name) override {
    list_.erase(std::remove_if(list_.begin(), list_.end(), [&](auto& e) { return e.first == name; }), list_.end());
  }
  const HeaderList& list() const { return list_; }

 private:
  HeaderList list_;
};

}  // namespace envoy_js::stub
