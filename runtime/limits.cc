// The engine's limits as quickjs sees them: a heap allocator that counts every byte against
// max_heap_bytes, and the interrupt handler that enforces max_cpu_ms_per_event.
#include <malloc.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>

#include "internal.h"

namespace envoy_js {
namespace {

// The heap limit is enforced here rather than with JS_SetMemoryLimit so that hitting it is
// known for certain: when quickjs cannot even allocate the "out of memory" error, the
// exception it leaves behind is a bare null.
void* heapMalloc(void* opaque, size_t size) {
  auto* e = static_cast<Engine::Impl*>(opaque);
  if (e->heapUsed + size > e->heapLimit) {
    e->heapLimitHit = true;
    return nullptr;
  }
  void* p = malloc(size);
  if (p) e->heapUsed += malloc_usable_size(p);
  return p;
}

void* heapCalloc(void* opaque, size_t count, size_t size) {
  auto* e = static_cast<Engine::Impl*>(opaque);
  if (size != 0 && count > (SIZE_MAX / size)) return nullptr;
  if (e->heapUsed + count * size > e->heapLimit) {
    e->heapLimitHit = true;
    return nullptr;
  }
  void* p = calloc(count, size);
  if (p) e->heapUsed += malloc_usable_size(p);
  return p;
}

void heapFree(void* opaque, void* ptr) {
  if (ptr == nullptr) return;
  auto* e = static_cast<Engine::Impl*>(opaque);
  e->heapUsed -= malloc_usable_size(ptr);
  free(ptr);
}

void* heapRealloc(void* opaque, void* ptr, size_t size) {
  auto* e = static_cast<Engine::Impl*>(opaque);
  size_t old = ptr ? malloc_usable_size(ptr) : 0;
  if (size > old && e->heapUsed + (size - old) > e->heapLimit) {
    e->heapLimitHit = true;
    return nullptr;
  }
  void* p = realloc(ptr, size);
  if (p == nullptr) return nullptr;
  e->heapUsed = e->heapUsed - old + malloc_usable_size(p);
  return p;
}

size_t heapUsableSize(const void* ptr) { return malloc_usable_size(const_cast<void*>(ptr)); }

}  // namespace

const JSMallocFunctions kHeapFunctions = {heapCalloc, heapMalloc, heapFree, heapRealloc, heapUsableSize};

int interruptHandler(JSRuntime*, void* opaque) {
  auto* engine = static_cast<Engine::Impl*>(opaque);
  if (!engine->deadlineArmed) return 0;
  if (std::chrono::steady_clock::now() < engine->deadline) return 0;
  engine->interrupted = true;
  return 1;
}

}  // namespace envoy_js
