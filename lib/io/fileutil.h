/* fileutil.h — small file helpers with error messages that name the path. */
#ifndef BLIPC_IO_FILEUTIL_H
#define BLIPC_IO_FILEUTIL_H

#include "err.h"
#include <stddef.h>

/* Read a whole file into a malloc'd NUL-terminated buffer (size excludes the NUL).
 * max_size bounds the file size (0 = 1 GiB). */
blipc_status blipc__read_file(const char *path, size_t max_size, char **data, size_t *size, blipc_err *e);
/* dir + "/" + name into buf (returns BLIPC_ERR_LIMIT if it does not fit). */
blipc_status blipc__path_join(char *buf, size_t cap, const char *dir, const char *name, blipc_err *e);
int blipc__file_exists(const char *path);
int blipc__dir_exists(const char *path);

/* A read-only memory map of a whole file. */
typedef struct blipc_mmap {
    void *data;
    size_t size;
} blipc_mmap;
blipc_status blipc__mmap_file(const char *path, blipc_mmap *m, blipc_err *e);
void blipc__munmap(blipc_mmap *m);

#endif
