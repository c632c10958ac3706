#include "threads.h"

#include <cblas.h>
#include <pthread.h>
#include <unistd.h>

int blipc__ncores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int blipc__threads_set(int n) {
    if (n <= 0) n = blipc__ncores();
    openblas_set_num_threads(n);
    return n;
}

typedef struct par_job {
    blipc_par_fn fn;
    void *arg;
    int i, n;
} par_job;

static void *par_main(void *p) {
    par_job *j = p;
    j->fn(j->arg, j->i, j->n);
    return NULL;
}

void blipc__parallel_for(int n_threads, blipc_par_fn fn, void *arg) {
    if (n_threads <= 1) {
        fn(arg, 0, 1);
        return;
    }
    if (n_threads > 64) n_threads = 64;
    pthread_t th[64];
    par_job jobs[64];
    int started[64] = {0};
    for (int i = 1; i < n_threads; i++) {
        jobs[i] = (par_job){fn, arg, i, n_threads};
        started[i] = pthread_create(&th[i], NULL, par_main, &jobs[i]) == 0;
    }
    fn(arg, 0, n_threads);
    for (int i = 1; i < n_threads; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        else fn(arg, i, n_threads); /* could not start a thread: do its share here */
    }
}
