/* arena.h — a bump allocator for activations: sized once per session, reset per call. */
#ifndef BLIPC_CORE_ARENA_H
#define BLIPC_CORE_ARENA_H

#include "err.h"
#include <stddef.h>

typedef struct blipc_arena {
    char *base;
    size_t cap, used, peak;
} blipc_arena;

blipc_status blipc__arena_init(blipc_arena *a, size_t cap, blipc_err *e);
void blipc__arena_free(blipc_arena *a);
/* 64-byte aligned; NULL when the arena is full (callers size it up front). */
void *blipc__arena_alloc(blipc_arena *a, size_t bytes);
static inline size_t blipc__arena_mark(const blipc_arena *a) { return a->used; }
static inline void blipc__arena_reset(blipc_arena *a, size_t mark) { a->used = mark; }

#endif
