/* blocks.h — helpers shared by the BLIP-2 architectures (vit.c, qformer.c,
 * opt.c): table-driven weight loading with exact shapes, and a weight matrix
 * that is either f32 (mapped in place) or bf16 (reduced-storage option). */
#ifndef BLIPC_NN_BLOCKS_H
#define BLIPC_NN_BLOCKS_H

#include "err.h"
#include "safetensors.h"
#include <stddef.h>
#include <stdint.h>

/* A linear weight [N, K] (HF layout, out x in): exactly one of f / h is set. */
typedef struct blipc_wmat {
    const float *f;    /* [N, K] f32, usually inside the mapping */
    const uint16_t *h; /* [N, K] bf16 (BLIPC_WEIGHTS_BF16 or a bf16 checkpoint kept as is) */
} blipc_wmat;

/* How blipc_wmat fields are filled. */
typedef enum blipc_wmode {
    BLIPC_WMODE_F32 = 0,      /* always f32 (F16/BF16 upcast exactly at load) */
    BLIPC_WMODE_BF16 = 1,     /* always bf16 (F32 rounded to nearest even) */
    BLIPC_WMODE_AS_STORED = 2 /* bf16 if the tensor is BF16, else f32 */
} blipc_wmode;

/* One weight of a table: the field at `offset` in the destination struct is a
 * `const float *` (kind 0) or a blipc_wmat (kind 1). `name` is a printf format
 * that may use the layer index once (%d). dims[] index the caller's dims array. */
typedef struct blipc_wspec {
    size_t offset;
    const char *name;
    int kind;
    int ndim;
    int dims[4];
} blipc_wspec;

/* Load every weight of the table into obj; `layer` fills the %d of names.
 * Errors: "missing tensor X in FILE", "tensor X in FILE has shape [..], expected [..] (from config.json)". */
blipc_status blipc__load_table(blipc_safetensors *st, void *obj, const blipc_wspec *spec, size_t n,
                               const int64_t *dims, int layer, blipc_wmode mode, blipc_err *e);

/* y[M, N] = x[M, K] . W^T + b, whatever W's storage. ldx/ldy 0 = K / N. */
void blipc__linear_w(const float *x, int M, int K, int ldx, const blipc_wmat *W, const float *b, int N, float *y,
                     int ldy);

/* The same for decode steps: each output row is computed with a summation
 * order that does not depend on M (so a sequence gets bit-identical results
 * whether it runs alone or in a batch), streaming W once for all M rows. */
void blipc__linear_rows(const float *x, int M, int K, const blipc_wmat *W, const float *b, int N, float *y,
                        int n_threads);

/* Row `row` of a [rows, D] matrix as f32 into out[D]. */
void blipc__wmat_row(const blipc_wmat *W, int D, int64_t row, float *out);

#endif
