/* The public headers compile as plain C11 with every warning on, on their own. */
#include "blipc.h"
#include "blipc.h" /* include guard works */
#include <stdio.h>
#include <string.h>

int main(void) {
    int failed = 0;
    if (strcmp(blipc_version(), "0.1.0") != 0 && BLIPC_VERSION_NUMBER != 100) failed++;
    for (int s = 0; s <= BLIPC_ERR_INTERNAL; s++)
        if (!blipc_status_str((blipc_status)s) || !*blipc_status_str((blipc_status)s)) failed++;
    if (strcmp(blipc_status_str((blipc_status)999), "unknown status") != 0) failed++;
    /* *_free(NULL) is a no-op for every handle */
    blipc_embedder_free(NULL);
    blipc_captioner_free(NULL);
    blipc_tokenizer_free(NULL);
    blipc_image_free(NULL);
    printf("%d passed, %d failed\n", failed ? 0 : 1, failed ? 1 : 0);
    return failed != 0;
}
