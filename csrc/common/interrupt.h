// common/interrupt.h — stopping a long forward pass at the next layer when the caller asks (Ctrl-C).
//
// Python cannot run a signal handler while its main thread waits in C++, so pyresnet.Model runs a long call (a big
// batch, a slow stage) on a worker thread and waits on the main thread, where Ctrl-C lands; it then raises the
// call's Interrupt, a flag. The binding makes that flag the current thread's for the length of the call
// (InterruptScope), and every layer boundary checks it: LayerTimer's constructor (common/profile.h), which every
// stage's forward pass runs before each layer on the calling thread. A raised flag throws Interrupted there, which
// unwinds the forward pass between two layers: the lock guards release the model, the activation buffers are
// scratch that the next call overwrites, and no pool task is in flight, so the next call on the same model is
// correct. The binding turns Interrupted into KeyboardInterrupt. A call without an Interrupt checks a null pointer.
#pragma once
#include <atomic>
#include <stdexcept>

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

// One call's flag: set() from any thread, read at every layer boundary of the call.
class Interrupt {
 public:
  void set() { flag_.store(true, std::memory_order_relaxed); }
  bool is_set() const { return flag_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> flag_{false};
};

// The flag of the call running on this thread, or nullptr.
inline thread_local const Interrupt* current_interrupt = nullptr;

// Makes `i` the current thread's flag until the end of the scope (nullptr: none).
class InterruptScope {
 public:
  explicit InterruptScope(const Interrupt* i) : prev_(current_interrupt) { current_interrupt = i; }
  ~InterruptScope() { current_interrupt = prev_; }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  const Interrupt* prev_;
};

// Throws Interrupted when the current call's flag is raised. Never inlined: the check stays one call at each layer
// boundary, so adding it changes nothing in how the compiler builds the layers around it (with -ffast-math it may
// otherwise regroup their floating-point sums, and the logits would change in their last bits).
__attribute__((noinline)) inline void check_interrupt() {
  const Interrupt* i = current_interrupt;
  if (i != nullptr && i->is_set()) throw Interrupted();
}
