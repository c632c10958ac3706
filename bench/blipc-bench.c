/* blipc-bench — benchmark driver. Each subcommand lives in its own file
 * (bench_<name>.c, entry point bench_<name>_main(argc, argv) with argv[0] = the
 * subcommand); subcommands whose file is not built are reported as such. The
 * shared part (clock, machine limits) is bench_common.c.
 *
 *   blipc-bench embed   [--threads N] [--quick] [--out FILE]   MiniLM-L12 encoder
 *   blipc-bench caption [...]                                  BLIP-2 (see bench_caption.c)
 *   blipc-bench index   [...]                                  index store
 */
#include <stdio.h>
#include <string.h>

/* weak: a subcommand is available when its bench_<name>.c is linked in */
int bench_embed_main(int argc, char **argv) __attribute__((weak));
int bench_caption_main(int argc, char **argv) __attribute__((weak));
int bench_index_main(int argc, char **argv) __attribute__((weak));

static const struct {
    const char *name, *what;
    int (*fn)(int, char **);
} cmds[] = {
    {"embed", "all-MiniLM-L12-v2 encoder at the real shapes (random weights)", bench_embed_main},
    {"caption", "BLIP-2 (ViT-g, Q-Former, OPT-2.7B) at the real shapes (random weights)", bench_caption_main},
    {"index", "index store: insert and search throughput", bench_index_main},
};

static void usage(FILE *f) {
    fprintf(f, "usage: blipc-bench SUBCOMMAND [options]   (blipc-bench SUBCOMMAND --help)\n\nsubcommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-8s %s%s\n", cmds[i].name, cmds[i].what, cmds[i].fn ? "" : " [not built]");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(argv[1], cmds[i].name)) continue;
        if (!cmds[i].fn) {
            fprintf(stderr, "blipc-bench: subcommand %s is not built in this build\n", argv[1]);
            return 1;
        }
        return cmds[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "blipc-bench: unknown subcommand %s\n", argv[1]);
    usage(stderr);
    return 2;
}
