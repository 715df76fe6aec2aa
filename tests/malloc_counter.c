/* malloc_counter.c — counts heap allocations made by C/C++ code running WITHOUT the GIL (tests/test_no_malloc.py).
 *
 * Build: cc -shared -fPIC -O2 -o libcount.so tests/malloc_counter.c -ldl, then run Python with
 * LD_PRELOAD=libcount.so. The library interposes malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign
 * and free, forwards every call to the real function (found with dlsym(RTLD_NEXT, ...)), and counts a call only
 * while
 *   (a) counting is on: malloc_counter_start() .. malloc_counter_stop(), called by the test through ctypes, and
 *   (b) the calling thread does not hold the GIL: PyGILState_Check() == 0.
 * pyresnet's bindings release the GIL exactly around the C++ forward pass, so (b) selects the inference path and
 * leaves out the allocations of pybind11's argument handling and of the interpreter, which run with the GIL held.
 *
 * Bootstrap: dlsym itself may call calloc/malloc before the real functions are known. Those early requests are
 * served from a small static buffer (zeroed, so it satisfies calloc too); free() and realloc() recognise pointers
 * into it and never hand them to the real allocator.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);

/* ------------------------------------------------------------------------------------------ bootstrap buffer */

static _Alignas(64) char boot[64 * 1024];
static size_t boot_used;
static int resolving; /* set while init() runs dlsym */

static void *boot_alloc(size_t n) {
  n = (n + 63) & ~(size_t)63;
  size_t start = __atomic_fetch_add(&boot_used, n, __ATOMIC_RELAXED);
  if (start + n > sizeof boot) return NULL;
  return boot + start;
}

static int in_boot(const void *p) { return (const char *)p >= boot && (const char *)p < boot + sizeof boot; }

static void init(void) {
  if (real_free || resolving) return;
  resolving = 1;
  real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
  real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
  real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
  real_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
  real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
  real_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
  real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free"); /* last: real_free != NULL means all are resolved */
  resolving = 0;
}

__attribute__((constructor)) static void init_early(void) { init(); }

/* ---------------------------------------------------------------------------------------------------- counting */

static int enabled;
static int (*gil_check)(void); /* PyGILState_Check, looked up by malloc_counter_start() */
static unsigned long allocs, frees;

static void note(unsigned long *counter) {
  if (__atomic_load_n(&enabled, __ATOMIC_ACQUIRE) && gil_check && gil_check() == 0)
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

/* Resets the counts and starts counting. Looks PyGILState_Check up lazily, here rather than inside malloc, so that
 * dlsym's own allocations never recurse into the counter. Returns 0, or -1 when the symbol cannot be found. */
int malloc_counter_start(void) {
  if (!gil_check) gil_check = (int (*)(void))dlsym(RTLD_DEFAULT, "PyGILState_Check");
  if (!gil_check) return -1;
  __atomic_store_n(&allocs, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&frees, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&enabled, 1, __ATOMIC_RELEASE);
  return 0;
}

void malloc_counter_stop(void) { __atomic_store_n(&enabled, 0, __ATOMIC_RELEASE); }

/* Allocation calls (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign) counted since start. */
unsigned long malloc_counter_allocs(void) { return __atomic_load_n(&allocs, __ATOMIC_RELAXED); }

/* free() calls with a non-null pointer counted since start. */
unsigned long malloc_counter_frees(void) { return __atomic_load_n(&frees, __ATOMIC_RELAXED); }

/* ---------------------------------------------------------------------------------------------- interposition */

void *malloc(size_t n) {
  if (!real_malloc) {
    if (resolving) return boot_alloc(n);
    init();
  }
  note(&allocs);
  return real_malloc(n);
}

void *calloc(size_t count, size_t size) {
  if (!real_calloc) {
    if (resolving) {
      if (size && count > SIZE_MAX / size) return NULL;
      return boot_alloc(count * size); /* static memory starts zeroed and is never reused */
    }
    init();
  }
  note(&allocs);
  return real_calloc(count, size);
}

void *realloc(void *p, size_t n) {
  if (in_boot(p)) { /* move a bootstrap block to the real heap; its old size is unknown, copy what may exist */
    void *q = malloc(n);
    if (q) {
      size_t avail = (size_t)(boot + sizeof boot - (char *)p);
      memcpy(q, p, n < avail ? n : avail);
    }
    return q;
  }
  if (!real_realloc) {
    if (resolving) return boot_alloc(n);
    init();
  }
  note(&allocs);
  return real_realloc(p, n);
}

void free(void *p) {
  if (!p || in_boot(p)) return;
  if (!real_free) init();
  note(&frees);
  real_free(p);
}

int posix_memalign(void **out, size_t alignment, size_t n) {
  if (!real_posix_memalign) init();
  if (!real_posix_memalign) return ENOMEM;
  note(&allocs);
  return real_posix_memalign(out, alignment, n);
}

void *aligned_alloc(size_t alignment, size_t n) {
  if (!real_aligned_alloc) init();
  if (!real_aligned_alloc) return NULL;
  note(&allocs);
  return real_aligned_alloc(alignment, n);
}

void *memalign(size_t alignment, size_t n) {
  if (!real_memalign) init();
  if (!real_memalign) return NULL;
  note(&allocs);
  return real_memalign(alignment, n);
}
