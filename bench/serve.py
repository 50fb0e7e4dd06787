#!/usr/bin/env python3
"""The dashboard's figures (SPEC §9), over finished runs that bench/serve.sh makes:

  1. GET /api/runs/RUN of the big run (curl's time_total, median of 5), next to `status RUN --json`
     as a whole process; and, for reference, opening its event stream as the page does (every
     journal event from the first).
  2. In a copy of the page run's repository: a JSON line appended to the journal until its `id:`
     arrives on an open event stream, median of 20.
  3. The server's CPU (utime + stime from /proc) with 20 idle event streams open for 20 s.
  4. The page in headless Chromium (selenium) over the page run: from navigation start
     (performance.now() in the page) until every `tr[data-item]` row exists, and the first frame
     after that; median of 3.

A measurement, not a test: it prints figures and their targets; nothing fails on a slow machine.

usage: bench/serve.py BIN BIG_REPO PAGE_REPO
"""
import atexit, json, os, re, shutil, socket, statistics, subprocess, sys, tempfile, time

BIN, BIG, PAGE = (os.path.abspath(a) for a in sys.argv[1:4])
CLK_TCK = os.sysconf("SC_CLK_TCK")
servers = []
atexit.register(lambda: [p.kill() for p in servers if p.poll() is None])  # whatever happens, no server outlives the script


def the_run(repo):
    """The repository's only run: its id, journal path and last seq."""
    (run,) = os.listdir(os.path.join(repo, ".amplify", "runs"))
    journal = os.path.join(repo, ".amplify", "runs", run, "journal.jsonl")
    with open(journal, "rb") as f:
        lines = f.read().splitlines()
    return run, journal, json.loads(lines[-1])["seq"], len(lines)


def serve(repo):
    """A server on a free port; its process and (host, port), from its first line."""
    p = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    servers.append(p)
    line = p.stdout.readline().decode()
    m = re.match(r"serving http://([^:/]+):(\d+)/", line)
    if not m:
        sys.exit(f"serve printed {line!r}")
    return p, (m.group(1), int(m.group(2)))


def stop(p):
    p.terminate()
    p.wait(5)


def median_of(xs):
    return statistics.median(xs)


def ms(s):
    return f"{s * 1000:.0f} ms" if s >= 0.01 else f"{s * 1000:.1f} ms"


class Stream:
    """GET …/events over a raw socket: the headers, then bytes as they come."""

    def __init__(self, address, path):
        self.sock = socket.create_connection(address)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {address[0]}:{address[1]}\r\nAccept: text/event-stream\r\n\r\n".encode())
        self.buf = b""
        self.total = 0
        while b"\r\n\r\n" not in self.buf:
            self._read()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 200 " not in head.split(b"\r\n")[0]:
            sys.exit(f"event stream: {head[:200]!r}")

    def _read(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("the server closed the event stream")
        self.buf += chunk
        self.total += len(chunk)

    def until_id(self, seq):
        """Reads until the event whose `id:` is seq has arrived; drops what came before it."""
        mark = b"id: %d\n" % seq
        while True:
            i = self.buf.find(mark)
            if i >= 0 and (i == 0 or self.buf[i - 1:i] == b"\n"):
                self.buf = self.buf[i + len(mark):]
                return
            self.buf = self.buf[-64:]  # keep only what could hold a split mark
            self._read()

    def close(self):
        self.sock.close()


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1]


# ---------------------------------------------------------------------------------------------
# 1. GET /api/runs/RUN of the big run, and `status RUN --json`.
run, journal, last, events = the_run(BIG)
items = len(json.loads(subprocess.run([BIN, "status", run, "--json"], cwd=BIG, capture_output=True, check=True).stdout)["items"])
size = os.path.getsize(journal)
server, address = serve(BIG)
url = f"http://{address[0]}:{address[1]}/api/runs/{run}"
api = []
for _ in range(6):  # the first is reported apart (first request of a fresh server)
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total} %{size_download}", url],
                         capture_output=True, text=True, check=True).stdout.split()
    if out[0] != "200":
        sys.exit(f"GET {url}: {out[0]}")
    api.append(float(out[1]))
    reply = int(out[2])
status = []
for _ in range(5):
    t = time.perf_counter()
    subprocess.run([BIN, "status", run, "--json"], cwd=BIG, stdout=subprocess.DEVNULL, check=True)
    status.append(time.perf_counter() - t)
print(f"1. GET /api/runs/RUN, {items:,} items ({events:,} events, {size / 1e6:.1f} MB journal; reply {reply / 1e6:.1f} MB):")
print(f"   {ms(median_of(api[1:]))} median of 5 (target < 300 ms)   runs: {', '.join(ms(x) for x in api[1:])}; first request {ms(api[0])}")
print(f"   `status RUN --json`, whole process: {ms(median_of(status))} median of 5   runs: {', '.join(ms(x) for x in status)}")
# What the page does on opening this run: the event stream from its first event.
t = time.perf_counter()
s = Stream(address, f"/api/runs/{run}/events")
s.until_id(last)
replay = time.perf_counter() - t
print(f"   (reference, no target) its event stream from the start, as the page opens it: all {last:,} events in {ms(replay)}, {s.total / 1e6:.1f} MB")
s.close()
stop(server)

# ---------------------------------------------------------------------------------------------
# 2 and 3: a copy of the page run's repository (its journal is appended to).
box = tempfile.mkdtemp(prefix="copy-", dir=os.path.dirname(PAGE))  # in serve.sh's sandbox
copy = os.path.join(box, "repo")
shutil.copytree(PAGE, copy, symlinks=True)
run, journal, last, events = the_run(copy)
server, address = serve(copy)
s = Stream(address, f"/api/runs/{run}/events?after={last}")
time.sleep(0.3)
latency = []
seq = last
for k in range(20):
    seq += 1
    line = json.dumps({"seq": seq, "at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "type": "note",
                       "stage": "one", "item": 0, "kind": "bench", "fields": {"k": k}}, separators=(",", ":")) + "\n"
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND)
    t = time.perf_counter()
    os.write(fd, line.encode())
    os.close(fd)
    s.until_id(seq)
    latency.append(time.perf_counter() - t)
    time.sleep(0.05)
s.close()
print(f"2. a journal append until its event arrives on an open stream: {ms(median_of(latency))} median of 20 "
      f"(target < 1 s, goal ≤ 50 ms)   min {ms(min(latency))}, max {ms(max(latency))}")

# 3. Twenty streams opened as the page opens them (from the first event), then idle.
streams = []
for _ in range(20):
    x = Stream(address, f"/api/runs/{run}/events")
    x.until_id(seq)
    streams.append(x)
time.sleep(1)
pid = server.pid
threads = proc_status(pid, "Threads")
t0, w0 = cpu_ticks(pid), time.perf_counter()
time.sleep(20)
t1, w1 = cpu_ticks(pid), time.perf_counter()
cpu = (t1 - t0) / CLK_TCK
print(f"3. server CPU with 20 idle event streams over {w1 - w0:.0f} s: {cpu:.2f} s, {100 * cpu / (w1 - w0):.2f} % of one core "
      f"({t1 - t0} ticks; target ≈ 0)   {threads} threads, RSS {int(proc_status(pid, 'VmRSS')) / 1024:.0f} MiB")
for x in streams:
    x.close()
stop(server)
shutil.rmtree(box)

# ---------------------------------------------------------------------------------------------
# 4. The page in headless Chromium (the page run itself was never appended to).
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

run, journal, last, events = the_run(PAGE)
n_items = len(json.loads(subprocess.run([BIN, "status", run, "--json"], cwd=PAGE, capture_output=True, check=True).stdout)["items"])
server, address = serve(PAGE)
options = Options()
options.binary_location = "/usr/bin/chromium"
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"]:
    options.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
# In every new document, before the page's script: the time (performance.now(), from navigation
# start) at which the rows exist, and at the first frame after them.
driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
(() => {
  const want = %d; const b = window.__bench = {};
  const obs = new MutationObserver(() => {
    if (b.rows || document.querySelectorAll('tr[data-item]').length < want) return;
    b.rows = performance.now(); obs.disconnect();
    requestAnimationFrame(() => setTimeout(() => { b.frame = performance.now(); }, 0));
  });
  obs.observe(document, { childList: true, subtree: true });
})();""" % n_items})
loads = []
try:
    for _ in range(3):
        driver.get("about:blank")
        driver.get(f"http://{address[0]}:{address[1]}/")
        deadline = time.time() + 30
        while True:
            b = driver.execute_script("return window.__bench")
            if b and b.get("frame"):
                break
            if time.time() > deadline:
                sys.exit(f"the page did not show {n_items} rows in 30 s: {b}")
            time.sleep(0.05)
        time.sleep(1.5)  # let the stream's replay and the refresh it sets off happen, then look at them
        info = driver.execute_script("""
          const st = performance.getEntriesByType('resource').filter(e => /\\/api\\/runs\\/[^/]+$/.test(e.name));
          return { count: document.querySelectorAll('tr[data-item]').length, fetches: st.length, first: [st[0].startTime, st[0].responseEnd] };""")
        loads.append({"rows": b["rows"] / 1000, "frame": b["frame"] / 1000, **info})
finally:
    driver.quit()
stop(server)
loads.sort(key=lambda x: x["rows"])
m = loads[1]
print(f"4. the page of a run of {n_items:,} items ({events:,} events) in headless Chromium, from navigation start: "
      f"all {m['count']:,} `tr[data-item]` rows {ms(m['rows'])}, median of 3 (target < 1 s)   runs: {', '.join(ms(x['rows']) for x in loads)}")
print(f"   painted (the first frame after them): {ms(median_of([x['frame'] for x in loads]))} median   "
      f"runs: {', '.join(ms(x['frame']) for x in loads)}")
print(f"   in the median load GET /api/runs/RUN took {ms(m['first'][0] / 1000)}–{ms(m['first'][1] / 1000)}; the page fetched it "
      f"(and drew the table) {m['fetches']}× within 1.5 s of the rows (the event stream's replay sets off another refresh)")
