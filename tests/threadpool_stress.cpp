// threadpool_stress.cpp — v6's ThreadPool (every stage from v6 holds a copy) under stress: many short parallel_for calls
// on 2, 3 and 4 threads, every result checked. tests/test_threadpool.py builds it with ThreadSanitizer and runs it.
#include <cstdio>
#include <vector>
#include "threadpool.h"
int main() {
  for (int threads : {2, 3, 4}) {
    ThreadPool pool(threads);
    std::vector<long> out(257);
    for (int call = 0; call < 20000; call++) {
      const int tasks = 1 + call % 257;
      pool.parallel_for(tasks, [&](int t) { out[t] = static_cast<long>(call) * 1000 + t; });
      for (int t = 0; t < tasks; t++)
        if (out[t] != static_cast<long>(call) * 1000 + t) { std::printf("wrong at call %d task %d\n", call, t); return 1; }
    }
  }
  std::puts("ok");
  return 0;
}
