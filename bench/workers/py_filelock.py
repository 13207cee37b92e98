"""Bench worker for Python's filelock (Debian python3-filelock), same modes as ref.c."""
import os
import resource
import sys
import time

from filelock import FileLock, Timeout

mode, path = sys.argv[1], sys.argv[2] + ".py"  # its own file: filelock truncates what it opens
args = sys.argv[3:]


def say(s):
    print(s, flush=True)


def acquire(lock, timeout):
    try:
        lock.acquire(timeout=timeout)
        return True
    except Timeout:
        return False


if mode == "s1":
    n = int(args[0])
    lock = FileLock(path)
    t = time.monotonic_ns()
    for _ in range(n):
        lock.acquire()
        lock.release()
    say("%.3f" % ((time.monotonic_ns() - t) / 1000 / n))
elif mode == "handoff":
    lock = FileLock(path)
    for cmd in sys.stdin:
        cmd = cmd.strip()
        if cmd == "hold":
            lock.acquire()
            say("held")
        elif cmd == "release":
            t = time.monotonic_ns()
            lock.release()
            say(t)
        elif cmd == "wait":
            say("waiting")
            lock.acquire()
            t = time.monotonic_ns()
            lock.release()
            say(t)
elif mode == "rmw":
    counter, n = args[0], int(args[1])
    lock = FileLock(path)
    warm = FileLock(path + ".warm")  # the same work on scratch files first, unmeasured, as the Node workers do
    for i in range(3000):
        with warm:
            fd = os.open(counter + ".warm", os.O_RDWR | os.O_CREAT, 0o666)
            os.pread(fd, 32, 0)
            os.pwrite(fd, str(i).encode(), 0)
            os.close(fd)
    say("ready")
    sys.stdin.readline()
    for _ in range(n):
        with lock:
            # The same I/O as ref.c: read, write in place, trim to the new length.
            fd = os.open(counter, os.O_RDWR | os.O_CREAT, 0o666)
            text = os.pread(fd, 32, 0)
            out = str((int(text) if text else 0) + 1).encode()
            os.pwrite(fd, out, 0)
            os.ftruncate(fd, len(out))
            os.close(fd)
    say("done")
elif mode == "cpuwait":
    lock = FileLock(path)
    before = resource.getrusage(resource.RUSAGE_SELF)
    got = acquire(lock, float(args[0]))
    after = resource.getrusage(resource.RUSAGE_SELF)
    say("%.3f" % ((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000))
elif mode == "hold":
    lock = FileLock(path)
    lock.acquire()
    say("held")
    sys.stdin.read()
else:
    sys.exit(64)
