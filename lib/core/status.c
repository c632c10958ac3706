#include "blipc.h"

const char *blipc_status_str(blipc_status s) {
    switch (s) {
    case BLIPC_OK: return "ok";
    case BLIPC_ERR_INVALID_ARG: return "invalid argument";
    case BLIPC_ERR_IO: return "I/O error";
    case BLIPC_ERR_FORMAT: return "malformed file";
    case BLIPC_ERR_MODEL: return "model/checkpoint error";
    case BLIPC_ERR_NOMEM: return "out of memory";
    case BLIPC_ERR_UNSUPPORTED: return "unsupported";
    case BLIPC_ERR_LIMIT: return "limit exceeded";
    case BLIPC_ERR_ABORTED: return "aborted";
    case BLIPC_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case BLIPC_ERR_NETWORK: return "network error";
    case BLIPC_ERR_NOT_FOUND: return "not found";
    case BLIPC_ERR_AUTH: return "authentication/authorization failed";
    case BLIPC_ERR_STORE: return "store error";
    case BLIPC_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *blipc_version(void) {
#define BLIPC_STR2(x) #x
#define BLIPC_STR(x) BLIPC_STR2(x)
    return BLIPC_STR(BLIPC_VERSION_MAJOR) "." BLIPC_STR(BLIPC_VERSION_MINOR) "." BLIPC_STR(BLIPC_VERSION_PATCH);
}
