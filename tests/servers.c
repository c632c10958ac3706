/* servers.c — start/stop the Python test servers (see servers.h). */
#include "servers.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int th_server_start(th_server *s, const char *script, const char *const *args) {
    memset(s, 0, sizeof *s);
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC)) return -1;
    if (pipe2(out, O_CLOEXEC)) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    const char *py = getenv("BLIPC_PYTHON");
    if (!py || !*py) py = "/usr/bin/python3";
    const char *argv[28] = {py, script};
    int k = 2;
    for (int i = 0; args && args[i] && k < 26; i++) argv[k++] = args[i];
    argv[k] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    pid_t pid;
    int rc = posix_spawn(&pid, py, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    if (rc != 0) {
        close(in[1]);
        close(out[0]);
        return -1;
    }
    s->pid = pid;
    s->in_fd = in[1];
    char line[32] = {0};
    size_t n = 0;
    struct pollfd pfd = {out[0], POLLIN, 0};
    while (n < sizeof line - 1 && poll(&pfd, 1, 30000) > 0) {
        ssize_t r = read(out[0], line + n, 1);
        if (r <= 0 || line[n] == '\n') break;
        n++;
    }
    line[n] = 0;
    close(out[0]);
    s->port = atoi(line);
    if (s->port <= 0) {
        th_server_stop(s);
        return -1;
    }
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
    return 0;
}

void th_server_stop(th_server *s) {
    if (s->pid <= 0) return;
    close(s->in_fd);
    s->in_fd = -1;
    for (int i = 0; i < 250; i++) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            return;
        }
        usleep(20000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

size_t th_buf_write(char *d, size_t sz, size_t nm, void *u) {
    th_buf *m = u;
    char *q = realloc(m->p, m->n + sz * nm + 1);
    if (!q) return 0;
    m->p = q;
    memcpy(m->p + m->n, d, sz * nm);
    m->n += sz * nm;
    m->p[m->n] = 0;
    return sz * nm;
}
