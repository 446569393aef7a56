/* Keeps libenvoy_js.so loadable on glibc 2.31, the floor of the PyPI Envoy wheel
 * (manylinux_2_31), although it is built on a newer glibc (Debian bookworm: 2.36).
 *
 * Linked into the module only. module.mk passes -Wl,--wrap=SYM for every symbol below, so
 * each reference to SYM in the module, the runtime, quickjs-ng and the static libstdc++ and
 * libgcc_eh goes to __wrap_SYM here instead. Each wrapper then either calls the same glibc
 * function under the older version that glibc still exports for compatibility (bound with
 * .symver), or, where no older version exists, provides the same behaviour itself:
 *
 *   pthread_* (2.34), dlsym (2.34)  the 2.34 versions only mark the move from libpthread and
 *                                   libdl into libc; the older versions are the same code.
 *   hypot (2.35)                    2.35 dropped the SVID error wrapper; both return the same
 *                                   values (only errno/matherr handling differed).
 *   fstat64 (2.33)                  before 2.33 fstat64 was an inline call of __fxstat64.
 *   __libc_single_threaded (2.32)   no older version: a constant 0 ("may be multi-threaded"),
 *                                   which makes libstdc++ always use atomic reference counts.
 *                                   Always correct, and Envoy is multi-threaded anyway.
 *   arc4random (2.36)               no older version: 4 bytes from getrandom() (2.25). Only
 *                                   reachable through std::random_device, which nothing of
 *                                   ours uses (libstdc++'s COW-string instantiations pull it in).
 *   _dl_find_object (2.35)          GCC 12's libgcc_eh unwinder calls it to find the FDE table
 *                                   of a PC. We keep libgcc static (-static-libgcc) so that the
 *                                   module needs no libgcc_s.so.1 (minimal images lack it) and
 *                                   its unwinder stays private; so: the real function when the
 *                                   running glibc has it (looked up once with dlvsym), else the
 *                                   same answer computed with dl_iterate_phdr (as GCC < 12 did).
 *
 * The old version names are those of x86_64; module.mk uses this file only there. On glibc <
 * 2.34 the pthread and dl functions live in libpthread.so.0 and libdl.so.2, so the module
 * lists both as needed libraries (on newer glibc they are empty stubs).
 * scripts/check-glibc-floor.sh (make check-glibc-floor) verifies the result. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#if !defined(__x86_64__)
#error "glibc_floor.c binds x86_64 glibc symbol versions"
#endif

#define HIDDEN __attribute__((visibility("hidden")))

/* Declares old_NAME, bound to NAME@VERSION. */
#define OLD(ret, name, version, params) \
  extern ret old_##name params;         \
  __asm__(".symver old_" #name ", " #name "@" version)

/* ---- same function, older version ---- */

OLD(int, pthread_create, "GLIBC_2.2.5", (pthread_t *, const pthread_attr_t *, void *(*)(void *), void *));
OLD(int, pthread_detach, "GLIBC_2.2.5", (pthread_t));
OLD(int, pthread_join, "GLIBC_2.2.5", (pthread_t, void **));
OLD(int, pthread_once, "GLIBC_2.2.5", (pthread_once_t *, void (*)(void)));
OLD(int, pthread_key_create, "GLIBC_2.2.5", (pthread_key_t *, void (*)(void *)));
OLD(int, __pthread_key_create, "GLIBC_2.2.5", (pthread_key_t *, void (*)(void *)));
OLD(int, pthread_key_delete, "GLIBC_2.2.5", (pthread_key_t));
OLD(void *, pthread_getspecific, "GLIBC_2.2.5", (pthread_key_t));
OLD(int, pthread_setspecific, "GLIBC_2.2.5", (pthread_key_t, const void *));
/* Not GLIBC_2.2.5: on x86_64 that is the pre-2.3.2 condition variable. */
OLD(int, pthread_condattr_setclock, "GLIBC_2.3.3", (pthread_condattr_t *, clockid_t));
OLD(int, pthread_cond_clockwait, "GLIBC_2.30",
    (pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *));
OLD(void *, dlsym, "GLIBC_2.2.5", (void *, const char *));
OLD(void *, dlvsym, "GLIBC_2.2.5", (void *, const char *, const char *));
OLD(double, hypot, "GLIBC_2.2.5", (double, double));
OLD(int, __fxstat64, "GLIBC_2.2.5", (int, int, struct stat64 *));

HIDDEN int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*f)(void *), void *arg) {
  return old_pthread_create(t, a, f, arg);
}
HIDDEN int __wrap_pthread_detach(pthread_t t) { return old_pthread_detach(t); }
HIDDEN int __wrap_pthread_join(pthread_t t, void **ret) { return old_pthread_join(t, ret); }
HIDDEN int __wrap_pthread_once(pthread_once_t *o, void (*f)(void)) { return old_pthread_once(o, f); }
HIDDEN int __wrap_pthread_key_create(pthread_key_t *k, void (*d)(void *)) { return old_pthread_key_create(k, d); }
/* libgcc_eh refers to this one weakly, to ask whether threads are in use: it always is. */
HIDDEN int __wrap___pthread_key_create(pthread_key_t *k, void (*d)(void *)) { return old___pthread_key_create(k, d); }
HIDDEN int __wrap_pthread_key_delete(pthread_key_t k) { return old_pthread_key_delete(k); }
HIDDEN void *__wrap_pthread_getspecific(pthread_key_t k) { return old_pthread_getspecific(k); }
HIDDEN int __wrap_pthread_setspecific(pthread_key_t k, const void *v) { return old_pthread_setspecific(k, v); }
HIDDEN int __wrap_pthread_condattr_setclock(pthread_condattr_t *a, clockid_t c) {
  return old_pthread_condattr_setclock(a, c);
}
HIDDEN int __wrap_pthread_cond_clockwait(pthread_cond_t *cv, pthread_mutex_t *m, clockid_t c,
                                         const struct timespec *t) {
  return old_pthread_cond_clockwait(cv, m, c, t);
}
HIDDEN void *__wrap_dlsym(void *handle, const char *name) { return old_dlsym(handle, name); }
HIDDEN double __wrap_hypot(double x, double y) { return old_hypot(x, y); }
/* 1 is _STAT_VER_LINUX, the version the pre-2.33 inline fstat64 passed on x86_64. */
HIDDEN int __wrap_fstat64(int fd, struct stat64 *st) { return old___fxstat64(1, fd, st); }

/* ---- no older version ---- */

HIDDEN char __wrap___libc_single_threaded = 0;

HIDDEN uint32_t __wrap_arc4random(void) {
  uint32_t v;
  unsigned char *p = (unsigned char *)&v;
  size_t got = 0;
  while (got < sizeof v) {
    ssize_t n = getrandom(p + got, sizeof v - got, 0);
    if (n > 0) got += (size_t)n;
    else if (n < 0 && errno != EINTR)
      abort(); /* arc4random cannot fail; glibc's aborts too when it has no entropy source */
  }
  return v;
}

/* _dl_find_object: the fields libgcc's unwinder reads are dlfo_eh_frame (and, on targets
 * other than x86_64, dlfo_eh_dbase); the fallback fills what dl_iterate_phdr can tell. */
#ifdef DLFO_STRUCT_HAS_EH_DBASE
typedef int (*find_object_fn)(void *, struct dl_find_object *);

struct find_state {
  uintptr_t pc;
  struct dl_find_object *out;
};

static int find_in_object(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  struct find_state *s = data;
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  const void *eh = NULL;
  int hit = 0;
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t start = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD) {
      uintptr_t end = start + ph->p_memsz;
      if (start < lo) lo = start;
      if (end > hi) hi = end;
      if (s->pc >= start && s->pc < end) hit = 1;
    } else if (ph->p_type == PT_GNU_EH_FRAME) {
      eh = (const void *)start;
    }
  }
  if (!hit) return 0;
  s->out->dlfo_flags = 0;
  s->out->dlfo_map_start = (void *)lo;
  s->out->dlfo_map_end = (void *)hi;
  s->out->dlfo_link_map = NULL;
  s->out->dlfo_eh_frame = (void *)eh;
#if DLFO_STRUCT_HAS_EH_DBASE
  s->out->dlfo_eh_dbase = NULL;
#endif
  return 1;
}

static int find_object_by_phdr(void *pc, struct dl_find_object *out) {
  struct find_state s = {(uintptr_t)pc, out};
  return dl_iterate_phdr(find_in_object, &s) > 0 ? 0 : -1;
}

HIDDEN int __wrap__dl_find_object(void *pc, struct dl_find_object *out) {
  /* Resolved on first use; a race only makes two threads store the same value. */
  static find_object_fn fn;
  find_object_fn f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);
  if (!f) {
    f = (find_object_fn)old_dlvsym(RTLD_DEFAULT, "_dl_find_object", "GLIBC_2.35");
    if (!f) f = find_object_by_phdr;
    __atomic_store_n(&fn, f, __ATOMIC_RELEASE);
  }
  return f(pc, out);
}
#endif
