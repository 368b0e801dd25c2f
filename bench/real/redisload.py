"""Real-program workload: redis-server (allocator under test, LD_PRELOAD)
driven by redis-benchmark and by a small deterministic command script.

Used by bench/run.py; runnable by itself for a manual check:
    python3 bench/real/redisload.py [REQUESTS] [LD_PRELOAD-library]

The server only ever listens on 127.0.0.1, on a free port picked at random
(bound to port 0 first), with persistence off and its working directory in
a temporary folder; it is stopped by its PID (SIGTERM) and reaped with
os.wait4, whose ru_maxrss is the server's peak RSS.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HOST = "127.0.0.1"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-"):
            return t + rest
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError("bad RESP reply %r" % line)

    def pipeline(self, cmds):
        self.sock.sendall(b"".join(_encode(*c) for c in cmds))
        return [self.reply() for _ in cmds]


def wait_ready(port, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            c = Conn(port, timeout=2.0)
            ok = c.pipeline([("PING",)])[0] == b"+PONG"
            c.close()
            if ok:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def script_checksum(port, n):
    """Run a deterministic command mix; return a CRC of all replies.
    Only order-independent commands (no HGETALL/SMEMBERS/KEYS), so the
    result does not depend on redis' per-process hash seed."""
    c = Conn(port)
    crc = 0
    x = 2463534242
    batch = []

    def flush():
        nonlocal crc, batch
        for rep in c.pipeline(batch):
            crc = zlib.crc32(repr(rep).encode(), crc)
        batch = []

    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        size = 8 + x % 3000 if i % 16 else 20000 + x % 60000
        batch.append(("SET", "k:%d" % (x % 5000), bytes([65 + i % 26]) * size))
        batch.append(("RPUSH", "l:%d" % (i % 64), "item-%d" % i))
        batch.append(("HSET", "h:%d" % (i % 128), "f:%d" % (x % 300), "v" * (x % 200)))
        batch.append(("SADD", "s:%d" % (i % 32), x % 1000))
        batch.append(("INCRBY", "ctr", i))
        if i % 4 == 0:
            batch.append(("STRLEN", "k:%d" % ((x >> 3) % 5000)))
            batch.append(("LRANGE", "l:%d" % (i % 64), 0, 3))
            batch.append(("HLEN", "h:%d" % (i % 128)))
            batch.append(("SCARD", "s:%d" % (i % 32)))
        if i % 7 == 0:
            batch.append(("DEL", "k:%d" % ((x >> 5) % 5000)))
            batch.append(("LPOP", "l:%d" % ((i + 1) % 64)))
        if len(batch) >= 256:
            flush()
    batch.append(("DBSIZE",))
    batch.append(("FLUSHALL",))
    flush()
    c.close()
    return crc


def server_argv(server_bin, workdir):
    """Command line for a private server: 127.0.0.1 only, a free random port,
    no persistence, working directory = workdir.  Returns (argv, port)."""
    port = free_port()
    return [server_bin, "--port", str(port), "--bind", HOST, "--protected-mode", "yes",
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", workdir,
            "--logfile", "", "--databases", "1"], port


def start_server(server_bin, env, workdir, log_path):
    argv, port = server_argv(server_bin, workdir)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=workdir)
    return proc, port


def stop_server(proc, timeout=20.0):
    """SIGTERM the server by its PID, reap it; returns (status, rusage)."""
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    killer = threading.Timer(timeout, lambda: _kill(proc.pid))
    killer.start()
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, ru


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_benchmark(bench_bin, port, requests, timeout=300):
    """redis-benchmark (no preload: only the server is under test).
    Returns (wall seconds, {test: requests/s}, ok)."""
    rps = {}
    t0 = time.perf_counter()
    ok = True
    runs = [
        ["-t", "set,get,incr,lpush,rpop,sadd,hset,spop,lrange_100", "-d", "256", "-n", str(requests)],
        ["-t", "set,get", "-d", "16384", "-n", str(max(requests // 4, 100))],
    ]
    for extra in runs:
        cmd = [bench_bin, "-h", HOST, "-p", str(port), "-c", "16", "-P", "8",
               "-r", "100000", "--csv"] + extra
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=timeout)
        if p.returncode != 0:
            ok = False
        size = extra[extra.index("-d") + 1]
        for line in p.stdout.decode(errors="replace").splitlines():
            f = [x.strip('"') for x in line.split(",")]
            if len(f) >= 2 and f[0] != "test":
                try:
                    rps["%s/d%s" % (f[0], size)] = float(f[1])
                except ValueError:
                    pass
    return time.perf_counter() - t0, rps, ok and bool(rps)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    env = dict(os.environ)
    if len(sys.argv) > 2:
        env["LD_PRELOAD"] = sys.argv[2]
    server, bench = shutil.which("redis-server"), shutil.which("redis-benchmark")
    if not server or not bench:
        sys.exit("redis-server/redis-benchmark not installed (bench/install-peers.sh)")
    work = tempfile.mkdtemp(prefix="oxbench-redis-")
    proc, port = start_server(server, env, work, os.path.join(work, "log"))
    try:
        if not wait_ready(port, proc):
            sys.exit("redis-server did not come up")
        crc = script_checksum(port, n // 10)
        wall, rps, ok = run_benchmark(bench, port, n)
    finally:
        rc, ru = stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)
    print("checksum %016x" % crc)
    print("benchmark %.3f s ok=%s server rc=%d maxrss=%d KiB" % (wall, ok, rc, ru.ru_maxrss), file=sys.stderr)
    for k, v in rps.items():
        print("  %-16s %10.0f req/s" % (k, v), file=sys.stderr)


if __name__ == "__main__":
    main()
