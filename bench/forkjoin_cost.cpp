// forkjoin_cost.cpp — what one fork/join of a stage's thread pool costs: times back-to-back parallel_for calls of
// near-empty tasks on the pool of the stage given by the include path, so the cost of handing work over and joining
// can be set against the time of a layer (README.md, "The goals, and what stands in the way": the fewer-fork/joins
// idea). Not part of the build; compile it against one stage's threadpool.h:
//
//   g++ -O2 -std=c++17 -pthread -Icsrc/v12_batch bench/forkjoin_cost.cpp -o /tmp/forkjoin_cost
//   /tmp/forkjoin_cost [threads=2] [calls=20000] [tasks=32]
//
// Prints the mean time per call for five batches of `calls` calls (the spread between them is the host's).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "threadpool.h"

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int calls = argc > 2 ? std::atoi(argv[2]) : 20000;
  const int tasks = argc > 3 ? std::atoi(argv[3]) : 32;
  if (threads < 1 || calls < 1 || tasks < 1) {
    std::fprintf(stderr, "usage: forkjoin_cost [threads >= 1] [calls >= 1] [tasks >= 1]\n");
    return 2;
  }
  ThreadPool pool(threads);
  std::atomic<long> sink{0};  // each task does one relaxed add, so the call is all handover and join
  for (int batch = 0; batch < 5; batch++) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < calls; c++)
      pool.parallel_for(tasks, [&sink](int t) { sink.fetch_add(t, std::memory_order_relaxed); });
    const auto t1 = std::chrono::steady_clock::now();
    std::printf("%.3f us per parallel_for (%d threads, %d tasks)\n",
                std::chrono::duration<double, std::micro>(t1 - t0).count() / calls, threads, tasks);
  }
  return sink.load() < 0;  // keeps the adds; never true
}
