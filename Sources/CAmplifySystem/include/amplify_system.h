#ifndef AMPLIFY_SYSTEM_H
#define AMPLIFY_SYSTEM_H

#include <sys/types.h>

/// Starts `argv[0]` (searched in PATH when it has no '/') in a new session and process group,
/// with ignored signals reset to their defaults and the mask cleared, stdin/stdout/stderr on the given
/// descriptors and the working directory `cwd` (NULL: unchanged). No other descriptor is
/// inherited, whoever opened it, except `keep_fd` (>= 0) as descriptor 3: a lock the child must
/// go on holding if the runner dies. Returns 0 and sets `*pid`, or an errno.
int amplify_spawn(char *const argv[], char *const envp[], const char *cwd,
                  int stdin_fd, int stdout_fd, int stderr_fd, int keep_fd, pid_t *pid);

/// pidfd_open(2), which Swift's Glibc module lacks. Returns a descriptor or -1 with errno set.
int amplify_pidfd_open(pid_t pid);

/// pipe2(2) with O_CLOEXEC | O_NONBLOCK. Returns 0 or -1 with errno set.
int amplify_pipe_cloexec_nonblock(int fds[2]);

/// Makes stdout line-buffered (Swift 6 cannot name C's `stdout` safely).
void amplify_line_buffer_stdout(void);

/// Unblocks SIGINT, SIGTERM, SIGHUP and SIGUSR1 in the calling thread: a runner started by a
/// parent that blocks them (test harnesses do) must still be able to hear them.
void amplify_unblock_signals(void);

/// memfd_create(2) with MFD_CLOEXEC: a file in memory, for capturing a command's output without
/// creating an inode on disk. Returns a descriptor or -1.
int amplify_memfd(const char *name);

/// An inotify descriptor (non-blocking, close-on-exec) watching directory `path` for files
/// written, renamed into it, or deleted; -1 with errno set when notifications are unavailable.
int amplify_watch_directory(const char *path);
/// An inotify descriptor watching file `path` for appends (IN_MODIFY), and for being replaced
/// or removed: what follows a journal as it grows. -1 on failure.
int amplify_watch_file(const char *path);

/// Waits until one of `fds` is readable or `timeout_ms` passes (-1: forever); drains the
/// inotify descriptor `drain_fd` (or -1). Returns poll(2)'s result.
int amplify_wait_readable(const int *fds, int count, int timeout_ms, int drain_fd);

#endif
