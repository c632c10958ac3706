/* threads.h — the one place that decides how many threads BLAS and our own
 * kernels use. OpenBLAS's count is process-wide: set it before BLAS-heavy work. */
#ifndef BLIPC_CORE_THREADS_H
#define BLIPC_CORE_THREADS_H

int blipc__ncores(void);
/* n <= 0 -> number of cores. Sets OpenBLAS threads; returns the count used. */
int blipc__threads_set(int n);

/* Run fn(arg, i, n) for i in [0, n) on up to n threads (pthreads, created per call
 * unless a pool is set up). Used by bandwidth-bound kernels (GEMV). */
typedef void (*blipc_par_fn)(void *arg, int i, int n);
void blipc__parallel_for(int n_threads, blipc_par_fn fn, void *arg);

#endif
