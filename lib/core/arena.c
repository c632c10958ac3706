#include "arena.h"

#include <stdlib.h>

blipc_status blipc__arena_init(blipc_arena *a, size_t cap, blipc_err *e) {
    a->base = NULL;
    a->cap = a->used = a->peak = 0;
    void *p = NULL;
    if (posix_memalign(&p, 64, cap ? cap : 64) != 0)
        return blipc__errf(e, BLIPC_ERR_NOMEM, "cannot allocate a %zu-byte activation arena", cap);
    a->base = p;
    a->cap = cap;
    return BLIPC_OK;
}

void blipc__arena_free(blipc_arena *a) {
    if (!a) return;
    free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}

void *blipc__arena_alloc(blipc_arena *a, size_t bytes) {
    size_t off = (a->used + 63) & ~(size_t)63;
    if (off > a->cap || bytes > a->cap - off) return NULL;
    a->used = off + bytes;
    if (a->used > a->peak) a->peak = a->used;
    return a->base + off;
}
