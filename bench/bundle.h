// A generated filter bundle of a realistic shape for the engine start-up benchmark: what a
// rollup build of a filter with a few bundled npm helpers looks like (module-scope functions,
// small classes, lookup tables of strings, a route table, validation code, error messages),
// ending in a `defineFilter`-style default export. Deterministic for a given size.
#pragma once

#include <cstddef>
#include <string>

namespace bench {

// Returns an ES module of at least `targetBytes` bytes (within a few hundred bytes).
std::string makeBundle(size_t targetBytes);

}  // namespace bench
