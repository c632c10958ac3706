// The public headers compile as C++ (extern "C", no C-only constructs) and link.
#include "blipc.h"
#include "blipc_index.h"
#include "blipc_hub.h"
#include <cstdio>
#include <cstring>

int main() {
    blipc_embedder_params ep;
    blipc_embedder_default_params(&ep);
    blipc_captioner_params cp;
    blipc_captioner_default_params(&cp);
    int ok = std::strlen(blipc_version()) > 0 && ep.n_threads >= 0 && cp.max_batch >= 0;
    std::printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
    return ok ? 0 : 1;
}
