/* servers.h — the Python test servers (the .py files in tests/servers/) as child processes.
 * A server is run with $BLIPC_PYTHON (default /usr/bin/python3), prints the
 * port it listens on as the first line of its stdout, and exits when its stdin
 * closes (so it never outlives the test). */
#ifndef BLIPC_TEST_SERVERS_H
#define BLIPC_TEST_SERVERS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct th_server {
    pid_t pid;                  /* 0 = not running */
    int in_fd;                  /* its stdin (closing it stops the server) */
    int port;
    char url[64];               /* http://127.0.0.1:<port> */
} th_server;

/* Start `python3 script args...` (args NULL-terminated, may be NULL; at most
 * 24) and wait up to 30 s for its port. Returns 0, or -1 when it did not start
 * or printed no port. */
int th_server_start(th_server *s, const char *script, const char *const *args);
/* Close its stdin, wait up to 5 s for it to exit, then kill it. */
void th_server_stop(th_server *s);

/* A response body collected from a server: th_buf_write is a curl write
 * callback (CURLOPT_WRITEFUNCTION, CURLOPT_WRITEDATA = a th_buf starting as
 * {0}) that appends to it and keeps it NUL-terminated; free p when done. */
typedef struct th_buf {
    char *p;
    size_t n;
} th_buf;
size_t th_buf_write(char *d, size_t sz, size_t nm, void *u);

#endif
