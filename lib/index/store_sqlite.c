/* store_sqlite.c — embedded store backend (work in progress). */
#include "backend.h"

blipc_status blipc__store_open(const blipc_index_params *p, blipc__index_ctx *ctx,
                               const blipc__index_backend_ops **ops, void **state) {
    (void)ops;
    (void)state;
    return blipc__errf(&ctx->err, BLIPC_ERR_UNSUPPORTED, "index store %s: not implemented yet", p->store_path);
}
