// threadpool.h — a persistent pool of worker threads, created with the model, that runs parallel_for(tasks, fn).
//
// The model owns one ThreadPool of `threads` threads: threads - 1 workers started by the constructor and joined by
// the destructor, plus the thread that calls parallel_for, which works too. No thread is created per layer or per
// inference, and handing work over allocates nothing: fn is passed as a plain function pointer plus a pointer to
// the caller's callable (no std::function), and the shared state is a few atomics.
//
// One parallel_for, start to end:
//   1. the caller publishes (trampoline, &fn), the call's tag and task count, resets the completed counter and the
//      tickets (tag + next task number, one 64-bit atomic), and bumps `generation` (under the mutex, so a worker
//      about to sleep cannot miss it);
//   2. every thread, caller included, claims task numbers from the tickets (compare-and-swap, only while the tag is
//      this call's and tasks are left) and runs them: which thread runs which task varies from call to call, so a
//      task's result must not depend on it;
//   3. the caller returns when every task has completed, whether or not every worker has woken up: a worker whose
//      core was taken away (another process, the hypervisor) does not hold up the call. A worker that arrives
//      late finds the tickets spent or tagged with a later call and claims nothing; a worker that claimed a task
//      keeps the call waiting until that task completes, so nothing of this call (fn, its captures) is touched
//      after parallel_for returns.
// Waiting is spin-then-sleep: a worker first polls `generation` for a short while, yielding now and then (the next
// layer's work usually comes within microseconds), then sleeps on a condition variable; the caller spins (yielding)
// for the last tasks in flight. fn must not throw (the network's kernels do not) and parallel_for must not be called
// from inside fn or from two threads at once (the model's mutex serialises forward()).
//
// fork(): the child of a fork has only the thread that called fork, so a pool made before it has no workers in the
// child, and waiting for them would hang forever (multiprocessing, gunicorn and DataLoader workers fork). A
// pthread_atfork handler counts forks in the child; the pool remembers the count it was made under, and the first
// parallel_for after a fork starts a fresh crew of workers (the only allocation a pool makes after its constructor,
// once per child). The old crew's threads, mutex and condition variables are abandoned, never touched: in the child
// they belong to threads that do not exist. A fork while another thread is inside parallel_for is not supported (the
// model's mutex, held by that thread, would stay locked in the child), as with any mutex.
#pragma once
#include <immintrin.h>  // _mm_pause
#include <pthread.h>    // pthread_atfork

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// Forks seen by this process so far, counted in the child by a pthread_atfork handler that the first pool registers.
inline std::atomic<unsigned>& fork_count() {
  static std::atomic<unsigned> count{0};
  static const int registered = pthread_atfork(nullptr, nullptr, [] { count.fetch_add(1, std::memory_order_relaxed); });
  (void)registered;
  return count;
}

class ThreadPool {
 public:
  // threads >= 1: threads - 1 persistent workers + the calling thread.
  explicit ThreadPool(int threads) : size_(threads) {
    if (threads < 1) throw std::invalid_argument("ThreadPool: threads must be >= 1, got " + std::to_string(threads));
    start_crew();
  }
  // Joins the workers (after any parallel_for has returned: one is never in flight while the model is destroyed).
  // In the child of a fork the crew's threads do not exist: it is abandoned, not joined.
  ~ThreadPool() {
    if (forked()) return;
    Crew& c = *crew_;
    {
      std::lock_guard<std::mutex> lock(c.mutex);
      c.stop.store(true, std::memory_order_relaxed);  // published by the generation bump
      c.generation.fetch_add(1, std::memory_order_release);
    }
    c.wake.notify_all();
    for (std::thread& t : c.threads) t.join();
    delete crew_;
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }  // threads

  // Calls fn(task) for every task in [0, tasks) spread over the pool, the calling thread included; returns when
  // all are done. Allocates nothing (fn is passed as a function pointer + context, not std::function), except once
  // in the child of a fork, where it first starts a fresh crew.
  template <class F>
  void parallel_for(int tasks, const F& fn) {
    if (tasks <= 0) return;
    if (size_ == 1 || tasks == 1) {  // nothing to share: no handover at all
      for (int t = 0; t < tasks; t++) fn(t);
      return;
    }
    if (forked()) start_crew();  // the old crew stays in the parent; abandoned here, never joined
    Crew& c = *crew_;
    c.call = [](const void* ctx, int task) { (*static_cast<const F*>(ctx))(task); };
    c.ctx = &fn;
    c.completed.store(0, std::memory_order_relaxed);
    const uint64_t g = c.generation.load(std::memory_order_relaxed) + 1;  // only the caller writes generation
    const uint64_t tag = (g & 0xffffffffu) << 32;
    c.work.store(tag | static_cast<uint32_t>(tasks), std::memory_order_relaxed);
    c.tickets.store(tag, std::memory_order_release);  // publishes call, ctx, completed, work
    {
      std::lock_guard<std::mutex> lock(c.mutex);
      c.generation.store(g, std::memory_order_release);
    }
    c.wake.notify_all();  // glibc skips the system call when no worker sleeps
    run_tasks(c, g);
    // Wait for the tasks still running on workers (at most one each): spin, yielding now and then.
    for (int spin = 0; c.completed.load(std::memory_order_acquire) != tasks; spin++) relax(spin);
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

  // The workers and everything they share with the caller: one heap object, so that the child of a fork can
  // abandon it whole.
  struct Crew {
    std::vector<std::thread> threads;
    std::mutex mutex;
    std::condition_variable wake;  // workers sleep here between calls
    std::atomic<uint64_t> generation{0};
    // A call's tag (its generation's low 32 bits) in the high half; the task count, or the next task number, in
    // the low half.
    std::atomic<uint64_t> work{0};
    std::atomic<uint64_t> tickets{0};
    std::atomic<int> completed{0};  // tasks of this call that have run
    // Set by the destructor, published by generation; atomic because a worker that woke late for an earlier call
    // may read it while the destructor writes it (the caller no longer waits for every worker).
    std::atomic<bool> stop{false};
    void (*call)(const void*, int) = nullptr;
    const void* ctx = nullptr;
  };

  bool forked() const { return born_ != fork_count().load(std::memory_order_relaxed); }

  void start_crew() {
    born_ = fork_count().load(std::memory_order_relaxed);
    crew_ = new Crew;
    crew_->threads.reserve(static_cast<size_t>(size_ - 1));
    for (int i = 0; i < size_ - 1; i++) crew_->threads.emplace_back([c = crew_] { worker(*c); });
  }

  // Claims and runs tasks of the call of generation g until none is left or the tickets belong to another call.
  // call and ctx are read only after a claim succeeded: that task has not completed, so its call is still waiting
  // and has published them (the claim's acquire pairs with the caller's release of the tickets).
  static void run_tasks(Crew& c, uint64_t g) {
    const uint64_t tag = (g & 0xffffffffu) << 32;
    const uint64_t work = c.work.load(std::memory_order_acquire);
    if ((work & ~0xffffffffull) != tag) return;  // a later call already: this one is over
    const uint64_t end = work;                    // tag | tasks: the first ticket past the last task
    uint64_t t = c.tickets.load(std::memory_order_acquire);
    while ((t & ~0xffffffffull) == tag && t < end) {
      if (!c.tickets.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      c.call(c.ctx, static_cast<int>(t & 0xffffffffu));
      c.completed.fetch_add(1, std::memory_order_release);
      t = c.tickets.load(std::memory_order_acquire);
    }
  }

  static void worker(Crew& c) {
    uint64_t seen = 0;  // generation starts at 0: the constructor has published nothing
    for (;;) {
      for (int spin = 0; c.generation.load(std::memory_order_acquire) == seen; spin++) {
        if (spin < kSpin) {
          relax(spin);
          continue;
        }
        std::unique_lock<std::mutex> lock(c.mutex);
        c.wake.wait(lock, [&] { return c.generation.load(std::memory_order_acquire) != seen; });
      }
      seen = c.generation.load(std::memory_order_acquire);
      if (c.stop.load(std::memory_order_relaxed)) return;  // stored before the generation bump that woke us
      run_tasks(c, seen);
    }
  }

  const int size_;
  unsigned born_ = 0;     // fork_count() when the crew was started
  Crew* crew_ = nullptr;  // owned; abandoned (never deleted) in the child of a fork
};
