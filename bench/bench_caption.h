/* bench_caption.h — `blipc-bench caption` (BLIP-2 at the blip2-opt-2.7b shapes). */
#ifndef BLIPC_BENCH_CAPTION_H
#define BLIPC_BENCH_CAPTION_H

/* argv[0] is the subcommand name; returns the process exit code. */
int bench_caption_main(int argc, char **argv);

#endif
