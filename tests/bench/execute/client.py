# SPDX-License-Identifier: Apache-2.0
"""Execute round trips for tests/bench/execute/run.sh: signed query-mode POSTs on one
keep-alive connection, the same through the execute websocket, and bare interpreter starts.

usage: client.py ENDPOINT ACCESS_KEY SECRET_KEY SESSION N CODE PEER_CMD...
Prints one JSON object: lists of round-trip times in ms (poll, ws, peer)."""
import base64, datetime, hashlib, hmac, http.client, json, os, socket, subprocess, sys, time

ep, ak, sk, sess, n, code = sys.argv[1:7]
peer = sys.argv[7:]
n = int(n)
host = ep[len("http://"):]
h, p = host.rsplit(":", 1)
VERSION = "v8.20240915"
EMPTY = hashlib.sha256(b"").hexdigest()
_ksign = {}


def headers(method, path, ctype="application/json"):
    """api-contract §1; k_sign depends only on the secret, the day and the host."""
    now = datetime.datetime.now(datetime.timezone.utc)
    date = now.isoformat()
    ymd = now.strftime("%Y%m%d")
    k = _ksign.get(ymd)
    if k is None:
        k_date = hmac.new(sk.encode(), ymd.encode(), hashlib.sha256).digest()
        k = _ksign[ymd] = hmac.new(k_date, host.encode(), hashlib.sha256).digest()
    sts = "\n".join([method, path, date, "host:" + host, "content-type:" + ctype,
                     "x-backendai-version:" + VERSION, EMPTY])
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return {"Date": date, "Content-Type": ctype, "X-BackendAI-Version": VERSION,
            "Authorization": "BackendAI signMethod=HMAC-SHA256, credential=%s:%s" % (ak, sig)}


def console_out(r):
    return "".join(d for t, d in r["console"] if t == "stdout")


# ---- polling API: POST /session/{ref}, "continue" until finished ----
conn = http.client.HTTPConnection(h, int(p), timeout=60)
conn.connect()
conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
path = "/session/" + sess


def post(body):
    data = json.dumps(body).encode()
    conn.request("POST", path, body=data, headers=headers("POST", path))
    resp = conn.getresponse()
    raw = resp.read()
    if resp.status != 200:
        raise SystemExit("client.py: POST %s -> %d %s" % (path, resp.status, raw[:300]))
    return json.loads(raw)["result"]


def poll_once():
    r = post({"mode": "query", "code": code, "runId": None, "options": {}})
    out = console_out(r)
    while r["status"] not in ("finished", "exec-timeout"):
        r = post({"mode": "continue", "code": "", "runId": r["runId"], "options": {}})
        out += console_out(r)
    if r["status"] != "finished" or out != "1\n":
        raise SystemExit("client.py: poll run: status=%s out=%r" % (r["status"], out))


def timed(fn, count):
    v = []
    for _ in range(count):
        t0 = time.perf_counter()
        fn()
        v.append((time.perf_counter() - t0) * 1000.0)
    return v


for _ in range(20):  # warm-up: the interpreter, the connection, the caches
    poll_once()
poll = timed(poll_once, n)
conn.close()

# ---- websocket: /stream/session/{ref}/execute; one run per connection (it closes after
# `finished`), so a round trip is connect + signed upgrade + run, as `backend.ai run` does ----
wpath = "/stream/session/%s/execute" % sess
wsmsg = json.dumps({"code": code, "mode": "query", "options": {}})


class WS:
    def __init__(self):
        self.s = socket.create_connection((h, int(p)), timeout=60)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (wpath, host, key)
               + "".join("%s: %s\r\n" % kv for kv in headers("GET", wpath).items()) + "\r\n")
        self.s.sendall(req.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = self.s.recv(4096)
            if not d:
                raise SystemExit("client.py: websocket closed during the handshake")
            buf += d
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise SystemExit("client.py: websocket handshake: %r" % head[:300])

    def send(self, text, op=0x81):
        data = text.encode()
        mask = os.urandom(4)
        ln = len(data)
        hdr = bytes([op]) + (bytes([0x80 | ln]) if ln < 126 else bytes([0x80 | 126]) + ln.to_bytes(2, "big"))
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        while True:
            b = self.buf
            if len(b) >= 2:
                op, ln, off = b[0] & 15, b[1] & 127, 2
                if ln == 126:
                    ln, off = int.from_bytes(b[2:4], "big"), 4
                elif ln == 127:
                    ln, off = int.from_bytes(b[2:10], "big"), 10
                if len(b) >= off + ln:
                    self.buf = b[off + ln:]
                    return op, b[off:off + ln]
            d = self.s.recv(65536)
            if not d:
                return None, b""
            self.buf += d


def ws_once():
    w = WS()
    w.send(wsmsg)
    out = ""
    while True:
        op, data = w.recv()
        if op in (None, 8):
            raise SystemExit("client.py: websocket closed mid-run")
        if op != 1:
            continue
        m = json.loads(data)
        out += console_out(m)
        if m["status"] in ("finished", "exec-timeout", "error"):
            break
    w.s.close()  # the server closes (1000) after `finished`; no need to wait for it
    if m["status"] != "finished" or out != "1\n":
        raise SystemExit("client.py: ws run: %r out=%r" % (m, out))


for _ in range(20):
    ws_once()
ws = timed(ws_once, n)

# ---- the peer: a fresh interpreter per run ----
def peer_once():
    r = subprocess.run(peer, stdout=subprocess.PIPE)
    if r.returncode != 0 or r.stdout != b"1\n":
        raise SystemExit("client.py: peer %r: rc=%d out=%r" % (peer, r.returncode, r.stdout))


for _ in range(5):
    peer_once()
pr = timed(peer_once, n)
print(json.dumps({"poll": poll, "ws": ws, "peer": pr}))
