#define _GNU_SOURCE
#include "amplify_system.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int amplify_spawn(char *const argv[], char *const envp[], const char *cwd,
                  int stdin_fd, int stdout_fd, int stderr_fd, int keep_fd, pid_t *pid) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) { posix_spawn_file_actions_destroy(&actions); return rc; }

    if (stdin_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
    if (stdout_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
    if (stderr_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2);
    if (cwd != NULL) posix_spawn_file_actions_addchdir_np(&actions, cwd);
    // Nothing but 0-2 reaches the child: descriptors the runner was handed without
    // O_CLOEXEC (a caller's pipes, say) would otherwise live as long as an agent does.
    if (keep_fd >= 0) {
        posix_spawn_file_actions_adddup2(&actions, keep_fd, 3);
        posix_spawn_file_actions_addclosefrom_np(&actions, 4);
    } else {
        posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    }

    // Handlers do not survive exec; ignored signals do. Reset those the runner (or the Swift
    // runtime) may ignore, rather than all 64, which costs 64 syscalls per spawn.
    sigset_t ignored, none;
    sigemptyset(&ignored);
    sigaddset(&ignored, SIGINT);
    sigaddset(&ignored, SIGTERM);
    sigaddset(&ignored, SIGHUP);
    sigaddset(&ignored, SIGQUIT);
    sigaddset(&ignored, SIGUSR1);
    sigaddset(&ignored, SIGUSR2);
    sigaddset(&ignored, SIGPIPE);
    sigaddset(&ignored, SIGCHLD);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &ignored);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

    if (strchr(argv[0], '/') != NULL) {
        rc = posix_spawn(pid, argv[0], &actions, &attr, argv, envp);
    } else {
        rc = posix_spawnp(pid, argv[0], &actions, &attr, argv, envp);
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int amplify_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

#include <fcntl.h>
#include <stdio.h>

int amplify_pipe_cloexec_nonblock(int fds[2]) {
    return pipe2(fds, O_CLOEXEC | O_NONBLOCK);
}

void amplify_line_buffer_stdout(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
}

void amplify_unblock_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

#include <sys/mman.h>

int amplify_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC);
}

#include <sys/inotify.h>
#include <poll.h>
#include <unistd.h>

int amplify_watch_directory(const char *path) {
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return -1;
    if (inotify_add_watch(fd, path, IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int amplify_watch_file(const char *path) {
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return -1;
    if (inotify_add_watch(fd, path, IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int amplify_wait_readable(const int *fds, int count, int timeout_ms, int drain_fd) {
    struct pollfd p[16];
    if (count > 16) count = 16;
    for (int i = 0; i < count; i++) { p[i].fd = fds[i]; p[i].events = POLLIN; p[i].revents = 0; }
    int n;
    do { n = poll(p, (nfds_t)count, timeout_ms); } while (n < 0 && errno == EINTR);
    if (drain_fd >= 0) {
        char buffer[4096];
        while (read(drain_fd, buffer, sizeof buffer) > 0) {}
    }
    return n;
}
