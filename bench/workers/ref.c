/* The kernel's own limit: what a C program gets from flock(2) directly. One binary, one
 * mode per scenario; the same line protocol as the other workers (see bench/run.mjs). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}
static void on_alarm(int sig) { (void)sig; }
static int open_lock(const char *path) {
  int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) { perror(path); exit(2); }
  return fd;
}
static int line(char *buf, size_t n) {
  if (!fgets(buf, (int)n, stdin)) return 0;
  buf[strcspn(buf, "\n")] = 0;
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3) return 64;
  const char *mode = argv[1], *path = argv[2];
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct sigaction sa = {0};
  sa.sa_handler = on_alarm; /* no SA_RESTART: a blocked flock returns EINTR */
  sigaction(SIGALRM, &sa, NULL);
  char cmd[64];
  if (!strcmp(mode, "s1")) { /* open + flock + unlock + close, n times */
    long n = atol(argv[3]);
    long long t = now_ns();
    for (long i = 0; i < n; i++) { int fd = open_lock(path); flock(fd, LOCK_EX); flock(fd, LOCK_UN); close(fd); }
    printf("%.3f\n", (now_ns() - t) / 1000.0 / n);
  } else if (!strcmp(mode, "handoff")) {
    int held = -1;
    while (line(cmd, sizeof cmd)) {
      if (!strcmp(cmd, "hold")) { held = open_lock(path); flock(held, LOCK_EX); puts("held"); }
      else if (!strcmp(cmd, "release")) { long long t = now_ns(); flock(held, LOCK_UN); close(held); printf("%lld\n", t); }
      else if (!strcmp(cmd, "wait")) { int fd = open_lock(path); puts("waiting"); flock(fd, LOCK_EX); long long t = now_ns(); flock(fd, LOCK_UN); close(fd); printf("%lld\n", t); }
    }
  } else if (!strcmp(mode, "rmw")) { /* n exclusive read-modify-write increments of a counter file */
    const char *counter = argv[3]; long n = atol(argv[4]);
    puts("ready");
    line(cmd, sizeof cmd);
    for (long i = 0; i < n; i++) {
      int fd = open_lock(path); flock(fd, LOCK_EX);
      char b[32] = {0}; int c = open(counter, O_RDWR | O_CREAT, 0666);
      ssize_t r = read(c, b, sizeof b - 1); long v = r > 0 ? atol(b) : 0;
      int len = snprintf(b, sizeof b, "%ld", v + 1); pwrite(c, b, len, 0); ftruncate(c, len); close(c);
      flock(fd, LOCK_UN); close(fd);
    }
    puts("done");
  } else if (!strcmp(mode, "reader")) { /* shared holds of hold_us, until stdin closes */
    long hold = atol(argv[3]);
    puts("ready");
    fcntl(0, F_SETFL, O_NONBLOCK);
    for (;;) {
      int fd = open_lock(path); flock(fd, LOCK_SH); usleep(hold); flock(fd, LOCK_UN); close(fd);
      if (read(0, cmd, sizeof cmd) == 0) break;
    }
  } else if (!strcmp(mode, "writer")) { /* one exclusive attempt, limit_s; prints the wait in ms or "starved" */
    int limit = atoi(argv[3]);
    int fd = open_lock(path); long long t = now_ns();
    alarm(limit);
    if (flock(fd, LOCK_EX) != 0 && errno == EINTR) puts("starved");
    else printf("%.3f\n", (now_ns() - t) / 1e6);
  } else if (!strcmp(mode, "cpuwait")) { /* CPU used while blocked for s seconds */
    int s = atoi(argv[3]); struct rusage a, b;
    int fd = open_lock(path); getrusage(RUSAGE_SELF, &a); alarm(s);
    flock(fd, LOCK_EX);
    getrusage(RUSAGE_SELF, &b);
    printf("%.3f\n", ((b.ru_utime.tv_sec - a.ru_utime.tv_sec) * 1e6 + (b.ru_utime.tv_usec - a.ru_utime.tv_usec) + (b.ru_stime.tv_sec - a.ru_stime.tv_sec) * 1e6 + (b.ru_stime.tv_usec - a.ru_stime.tv_usec)) / 1000.0);
  } else if (!strcmp(mode, "hold")) { /* hold exclusively until stdin closes */
    int fd = open_lock(path); flock(fd, LOCK_EX); puts("held");
    while (read(0, cmd, sizeof cmd) > 0) {}
  } else return 64;
  return 0;
}
