// threadpool.h — a persistent pool of worker threads, created with the model, that runs parallel_for(tasks, fn).
//
// v6_threads (new): the model owns one ThreadPool of `threads` threads: threads - 1 workers started by the
// constructor and joined by the destructor, plus the thread that calls parallel_for, which works too. No thread is
// created per layer or per inference, and handing work over allocates nothing: fn is passed as a plain function
// pointer plus a pointer to the caller's callable (no std::function), and the shared state is a few atomics.
//
// One parallel_for, start to end:
//   1. the caller publishes (trampoline, &fn, tasks), resets the task counter, sets the number of workers still
//      to report, and bumps `generation_` (under the mutex, so a worker about to sleep cannot miss it);
//   2. every thread, caller included, takes task numbers from one atomic counter (fetch_add) until none are left:
//      which thread runs which task varies from call to call, so a task's result must not depend on it;
//   3. each worker reports once per generation; the caller returns when all have reported, so nothing of this
//      call (fn, its captures) is touched after parallel_for returns.
// Waiting is spin-then-sleep: a worker first polls `generation_` for a short while (yielding now and then) (the next layer's work usually
// comes within microseconds), then sleeps on a condition variable; the caller waits for the last worker the same
// way. fn must not throw (the network's kernels do not) and parallel_for must not be called from inside fn or from
// two threads at once (the model's mutex serialises forward()).
#pragma once
#include <immintrin.h>  // _mm_pause

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

class ThreadPool {
 public:
  // threads >= 1: threads - 1 persistent workers + the calling thread.
  explicit ThreadPool(int threads) : size_(threads) {
    if (threads < 1) throw std::invalid_argument("ThreadPool: threads must be >= 1, got " + std::to_string(threads));
    workers_.reserve(static_cast<size_t>(threads - 1));
    for (int i = 0; i < threads - 1; i++) workers_.emplace_back([this] { worker(); });
  }
  // Joins the workers (after any parallel_for has returned: one is never in flight while the model is destroyed).
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }  // threads

  // Calls fn(task) for every task in [0, tasks) spread over the pool, the calling thread included; returns when
  // all are done. Allocates nothing (fn is passed as a function pointer + context, not std::function).
  template <class F>
  void parallel_for(int tasks, const F& fn) {
    if (tasks <= 0) return;
    if (size_ == 1 || tasks == 1) {  // nothing to share: no handover at all
      for (int t = 0; t < tasks; t++) fn(t);
      return;
    }
    call_ = [](const void* ctx, int task) { (*static_cast<const F*>(ctx))(task); };
    ctx_ = &fn;
    tasks_ = tasks;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(size_ - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1, std::memory_order_release);  // publishes call_, ctx_, tasks_, next_, pending_
    }
    wake_.notify_all();  // glibc skips the system call when no worker sleeps
    run_tasks();
    // Wait for every worker to report: spin a while, then sleep until the last one notifies.
    for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; spin++) {
      if (spin < kSpin) {
        relax(spin);
        continue;
      }
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
    }
  }

 private:
  static constexpr int kSpin = 1 << 12;  // polls before a thread sleeps
  // One poll of a spin-wait: a pause, and every 16th poll a yield, so that with more threads than free cores a
  // spinning thread hands its core to one that has work instead of burning its time slice.
  static void relax(int spin) {
    if (spin % 16 == 15)
      std::this_thread::yield();
    else
      _mm_pause();
  }

  void run_tasks() {
    for (int t; (t = next_.fetch_add(1, std::memory_order_relaxed)) < tasks_;) call_(ctx_, t);
  }

  void worker() {
    uint64_t seen = 0;  // generation_ starts at 0: the constructor has published nothing
    for (;;) {
      for (int spin = 0; generation_.load(std::memory_order_acquire) == seen; spin++) {
        if (spin < kSpin) {
          relax(spin);
          continue;
        }
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
      seen = generation_.load(std::memory_order_acquire);
      if (stop_) return;  // written before the generation bump that woke us
      run_tasks();
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {  // the last worker of this call
        { std::lock_guard<std::mutex> lock(mutex_); }  // the caller is either before its wait (sees 0) or in it
        done_.notify_one();
      }
    }
  }

  const int size_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;  // workers sleep here between calls
  std::condition_variable done_;  // the caller sleeps here for the last worker
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_{0};      // the next task number to hand out
  std::atomic<int> pending_{0};   // workers that have not reported for this call
  bool stop_ = false;             // guarded by mutex_ and published by generation_
  void (*call_)(const void*, int) = nullptr;
  const void* ctx_ = nullptr;
  int tasks_ = 0;
};
