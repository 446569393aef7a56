// What one `make bench` run measured, and how it is written down: bench/results.json (the
// fixed keys other tools read) and bench/RESULTS.md (a table, the targets, an interpretation,
// the profiles of the misses, and a history that keeps every earlier run's row).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bench {

// Repeated timing of one benchmark: per-operation values of each run.
struct Sample {
  std::vector<double> runs;
  long opsPerRun = 0;
  double median() const;
  double min() const;
  double max() const;
};

// One line of `callgrind_annotate` output: self instructions of one function.
struct ProfileRow {
  double irPerOp;
  double percent;
  std::string function;
};

struct Profile {
  std::string bench;                         // benchmark name, as given to `driver callgrind`
  long ops = 0;                              // operations inside the collected region
  double irPerOp = -1;                       // total collected Ir / ops
  std::vector<ProfileRow> top;               // self cost, any function
  std::vector<ProfileRow> runtimeInclusive;  // inclusive cost, functions of runtime/*.cc
};

// Instruction counts: (Ir of a run with N ops - Ir of a run with 0 ops) / N.
struct InstructionCount {
  double perOp = -1;  // < 0: not measured
  long n = 0;
};

struct MemoryBreakdown {  // JSMemoryUsage deltas divided by the number of streams
  double objects = 0, objectBytes = 0, properties = 0, propertyBytes = 0, mallocCount = 0;
};

struct Results {
  std::string date, commit, cpu, quickjsVersion, luajitVersion;
  int cores = 0;
  double loadBefore = -1, loadAfter = -1;  // 1-minute load average around the timed runs

  Sample headerRewrite, luajitHeaderRewrite, hostOnly, callFloor, asyncRequest;
  InstructionCount headerRewriteIr, luajitHeaderRewriteIr, callFloorIr, hostOnlyIr;

  size_t bundleBytes = 0, bytecodeBytes = 0;
  Sample startBytecode, startSource, createOnly, compileOnly, loadBytecodeOnly;

  size_t workerEngineBytes = 0;      // sample filter, right after Engine::create
  size_t workerEngineWarmBytes = 0;  // same engine after 1,000 streams and a GC
  size_t bundleEngineBytes = 0;      // the 50 KB bundle's engine
  double rssPerEngineBytes = 0;      // process RSS growth per engine (16 engines kept alive)
  size_t luaWorkerBytes = 0;         // the LuaJIT peer's state, for comparison

  double suspendedStreamBytes = 0;  // quickjs heap growth per pending stream
  double suspendedCxxBytes = 0;     // runtime C++ allocations (operator new) per pending stream
  int suspendedStreams = 0;
  MemoryBreakdown suspendedBreakdown;
  double destroyPendingNs = 0;     // onDestroy of one pending stream, 10,000 pending
  double destroyPendingFewNs = 0;  // same with 10 pending

  double passthroughGbps = 0;
  uint64_t passthroughBytesCopied = 0;
  uint64_t passthroughBytes = 0;
  Sample passthroughChunk;  // ns per 16 KiB chunk
  double transformMbps = 0;
  Sample transformChunk;

  std::vector<Profile> profiles;
};

// Writes <dir>/results.json and <dir>/RESULTS.md (keeping the history rows of an existing
// RESULTS.md, and including <dir>/ANALYSIS.md when present). Returns false on an I/O error.
bool writeReports(const Results& r, const std::string& dir, std::string* error);

// Reads the total Ir from a callgrind output file; -1 when unreadable.
double callgrindTotal(const std::string& file);
// Parses `callgrind_annotate` output into *rows: the first `limit` functions, in the file's
// order (cost order). With `onlyFile` set, only functions from files whose path contains it,
// each name once (annotate lists inlined copies separately; the first, largest, is kept).
bool readAnnotate(const std::string& file, size_t limit, long ops, const std::string& onlyFile,
                  std::vector<ProfileRow>* rows);

}  // namespace bench
