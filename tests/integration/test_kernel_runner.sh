#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# baic-kernel-runner on the host (no container): a client on its unix socket checks query,
# input, interrupt, completion, shell, batch, files, pty, bootstrap, startup and services.
# Usage: test_kernel_runner.sh BUILD_DIR   (exit 77 = skipped: no python3)
set -u
BUILD=${1:-$(dirname "$0")/../../build}
RUNNER=${BAIC_KERNEL_RUNNER:-$BUILD/core/kernel-runner/baic-kernel-runner}
PY=$(command -v python3) || { echo "SKIP: python3 missing"; exit 77; }
[ -x "$RUNNER" ] || { echo "FAIL: $RUNNER not built"; exit 1; }

TMP=$(mktemp -d /tmp/baic-kr-test.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT

# start_runner NAME [ENV=VAL...]: a runner with home $TMP/NAME/home on $TMP/NAME/sock
start_runner() {
    local name=$1
    shift
    mkdir -p "$TMP/$name/home"
    env BAIC_RUNNER_HOME="$TMP/$name/home" BACKENDAI_RUNTIME_PATH="$PY" "$@" \
        "$RUNNER" --socket "$TMP/$name/sock" 2>"$TMP/$name/log" &
    PIDS+=($!)
}

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$TMP/defs"
cat >"$TMP/defs/web.json" <<JSON
{"command": ["$PY", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]}
JSON

start_runner main BAIC_RUNNER_FLUSH_MS=300 \
    BACKENDAI_BOOTSTRAP_SCRIPT='echo booting; echo done > booted' \
    BACKENDAI_SERVICE_PORTS="web:http:$PORT,notes:preopen:[9001]" BAIC_RUNNER_SERVICE_DEFS="$TMP/defs"
start_runner walk BAIC_RUNNER_NO_OPENAT2=1
start_runner batch BACKENDAI_STARTUP_COMMAND='echo starting; exit 4' BACKENDAI_RUNTIME_TYPE=app

"$PY" - "$TMP" <<'PYEOF'
import base64, json, os, socket, sys, time

TMP = sys.argv[1]
failures = []


def check(cond, what):
    print(('ok   ' if cond else 'FAIL ') + what, flush=True)
    if not cond:
        failures.append(what)


class Runner:
    def __init__(self, name):
        path = os.path.join(TMP, name, 'sock')
        deadline = time.time() + 10
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.02)
        self.s.settimeout(10)
        self.f = self.s.makefile('rwb')
        self.next_id = 0
        self.pending = []
        self.hello = self.recv()

    def recv(self):
        if self.pending:
            return self.pending.pop(0)
        line = self.f.readline()
        if not line:
            raise EOFError('runner closed the connection')
        return json.loads(line)

    def send(self, msg):
        self.next_id += 1
        msg = dict(msg, id=self.next_id)
        self.f.write((json.dumps(msg) + '\n').encode())
        self.f.flush()
        return self.next_id

    def wait(self, pred, timeout=10):
        """Next message matching pred; others are kept for later."""
        deadline = time.time() + timeout
        skipped = []
        try:
            while time.time() < deadline:
                self.s.settimeout(max(0.01, deadline - time.time()))
                m = self.recv()
                if pred(m):
                    return m
                skipped.append(m)
            raise TimeoutError
        finally:
            self.pending = skipped + self.pending
            self.s.settimeout(10)

    def call(self, msg, timeout=10):
        i = self.send(msg)
        return self.wait(lambda m: m.get('id') == i and 'status' not in m, timeout)

    def run(self, code, mode='query', options=None, timeout=10):
        """All result messages of one run, up to the final one."""
        i = self.send({'op': 'execute', 'mode': mode, 'code': code, 'runId': None,
                       'options': options or {}})
        out = []
        while True:
            m = self.wait(lambda m: m.get('id') == i, timeout)
            out.append(m)
            if m.get('final') or m.get('ok') is False:
                return out


def text(msgs, kind='stdout'):
    return ''.join(d for m in msgs for t, d in m.get('console', []) if t == kind)


r = Runner('main')
check(r.hello.get('op') == 'hello' and 'query' in r.hello.get('features', []), 'hello with features')
check((r.hello.get('bootstrap') or {}).get('exitCode') == 0 and
      'booting' in r.hello['bootstrap'].get('output', '') and
      os.path.exists(os.path.join(TMP, 'main/home/booted')), 'bootstrap script ran once in /home/work')

# Query mode, Python
m = r.run('print(1)')
ok = (len(m) == 1 and m[0]['status'] == 'finished' and m[0]['exitCode'] == 0 and
      m[0]['console'] == [['stdout', '1\n']])
check(ok, 'print(1) -> stdout "1\\n", finished, exitCode 0' + ('' if ok else ' %s' % m))
times = []
for _ in range(20):
    t = time.perf_counter()
    r.run('print(1)')
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print('     print(1) round trip over the socket: median %.2f ms, min %.2f ms, max %.2f ms'
      % (times[10], times[0], times[-1]))
r.run('x = 1')
m = r.run('print(x)')
check(text(m) == '1\n', 'state persists across runs (x = 1; print(x))')
m = r.run('def f():\n    raise ValueError("boom")\nf()')
check(m[-1]['status'] == 'finished' and m[-1]['exitCode'] == 1 and
      'Traceback' in text(m, 'stderr') and 'ValueError: boom' in text(m, 'stderr') and
      'driver' not in text(m, 'stderr'), 'exception -> finished exitCode 1, traceback on stderr')
m = r.run('import os\nos.system("echo from-a-child")')
check('from-a-child\n' in text(m), "a subprocess's output reaches the console")
m = r.run('import time\nfor i in range(3):\n    print(i)\n    time.sleep(0.4)')
check(len(m) >= 2 and m[0]['status'] == 'continued' and m[-1]['status'] == 'finished' and
      text(m) == '0\n1\n2\n' and all(x['runId'] == m[0]['runId'] for x in m),
      'long run -> continued then finished (%s)' % [x['status'] for x in m])
m = r.run('import baic_display\nbaic_display.display("image/png", b"\\x89PNG")')
check(['media', ['image/png', base64.b64encode(b'\x89PNG').decode()]] in m[-1]['console'],
      'media console item')

# User input
i = r.send({'op': 'execute', 'mode': 'query', 'code': 'n = input("who? ")\nprint("hi", n)'})
m = r.wait(lambda m: m.get('id') == i)
check(m['status'] == 'waiting-input' and text([m]) == 'who? ' and
      m['options'] == {'is_password': False}, 'input() -> waiting-input with the prompt')
j = r.send({'op': 'execute', 'mode': 'input', 'code': 'bob', 'runId': m['runId']})
m = r.wait(lambda m: m.get('id') == j)
check(m['status'] == 'finished' and text([m]) == 'hi bob\n', 'mode input -> finished with the line')
m = r.call({'op': 'execute', 'mode': 'input', 'code': 'x', 'runId': 'nope'})
check(m.get('ok') is False and m.get('error') == 'not-waiting-input', 'input without a waiting run -> error')

# Interrupt
i = r.send({'op': 'execute', 'mode': 'query', 'code': 'print("spin", flush=True)\nwhile True: pass'})
r.wait(lambda m: m.get('id') == i and 'spin' in text([m]), 5)
t = time.time()
a = r.call({'op': 'interrupt'})
m = r.wait(lambda m: m.get('id') == i and m.get('final'), 5)
dt = time.time() - t
check(a.get('interrupted') is True and m['status'] == 'finished' and m['exitCode'] == 1 and
      'KeyboardInterrupt' in text([m], 'stderr') and dt < 2,
      'interrupt of while True: pass -> finished (KeyboardInterrupt) in %.0f ms' % (dt * 1000))
m = r.run('print(x + 1)')
check(text(m) == '2\n', 'the interpreter survives an interrupt')
i = r.send({'op': 'execute', 'mode': 'query', 'code': 'input()'})
r.wait(lambda m: m.get('id') == i and m['status'] == 'waiting-input')
r.call({'op': 'interrupt'})
m = r.wait(lambda m: m.get('id') == i and m.get('final'), 5)
check('KeyboardInterrupt' in text([m], 'stderr'), 'interrupt while waiting for input')

# Completion
m = r.call({'op': 'complete', 'code': 'import o', 'options': {'row': 0, 'col': 8, 'line': 'import o', 'post': ''}})
check('os' in m.get('result', []), 'completion of "import o" offers os')
r.run('import os')
m = r.call({'op': 'complete', 'code': 'os.pa', 'options': {'line': 'os.pa'}})
check('os.path' in m.get('result', []), 'completion of "os.pa" offers os.path')

# Shell query mode
m = r.run('echo hello; echo err >&2; exit 3', options={'runtime': 'shell'})
check(m[-1]['status'] == 'finished' and m[-1]['exitCode'] == 3 and text(m) == 'hello\n' and
      text(m, 'stderr') == 'err\n', 'shell: echo + exit 3 -> exitCode 3')
i = r.send({'op': 'execute', 'mode': 'query', 'code': 'import time; time.sleep(0.3)'})
m = r.call({'op': 'execute', 'mode': 'query', 'code': 'print(4)'})
check(m.get('ok') is False and m.get('error') == 'run-in-progress', 'a second query while one runs -> run-in-progress')
r.wait(lambda x: x.get('id') == i and x.get('final'), 5)

# Files
home = os.path.join(TMP, 'main/home')
os.symlink('/', os.path.join(home, 'root'))
os.symlink('/etc/passwd', os.path.join(home, 'pw'))
os.makedirs(os.path.join(home, 'inside'), exist_ok=True)
os.symlink('inside', os.path.join(home, 'link-in'))


def files(rr, tag):
    data = bytes(range(256)) * 3
    m = rr.call({'op': 'files.upload', 'path': 'sub/dir/a.bin', 'data_b64': base64.b64encode(data).decode()})
    check(m.get('ok') is True, '%s: upload creates parents' % tag)
    m = rr.call({'op': 'files.list', 'path': 'sub/dir'})
    names = {e['filename']: e for e in m.get('files', [])}
    check('a.bin' in names and names['a.bin']['size'] == len(data) and
          names['a.bin']['mode'].startswith('-rw'), '%s: list shows it' % tag)
    m = rr.call({'op': 'files.download', 'path': 'sub/../sub/dir/a.bin'})
    check(base64.b64decode(m.get('data_b64', '')) == data, '%s: download round trip' % tag)
    for bad in ['../x', '/etc/passwd', 'root/etc/passwd', 'pw', 'sub/../../x']:
        m = rr.call({'op': 'files.download', 'path': bad})
        check(m.get('ok') is False and m.get('error') == 'refused', '%s: download %s refused (%s)'
              % (tag, bad, m.get('msg')))
    m = rr.call({'op': 'files.upload', 'path': 'root/tmp/baic-kr-escape', 'data_b64': 'eA=='})
    check(m.get('ok') is False and not os.path.exists('/tmp/baic-kr-escape'),
          '%s: upload through a symlink to / refused' % tag)
    m = rr.call({'op': 'files.list', 'path': '/'})
    check(m.get('ok') is False, '%s: list / refused' % tag)
    m = rr.call({'op': 'files.list', 'path': '/home/work/sub'})
    check(m.get('ok') is True and [e['filename'] for e in m['files']] == ['dir'],
          '%s: /home/work/... means the home' % tag)


files(r, 'openat2')
m = r.call({'op': 'files.download', 'path': 'link-in'})
check(m.get('ok') is False, 'download of a directory refused')
w = Runner('walk')
os.symlink('/', os.path.join(TMP, 'walk/home/root'))
os.symlink('/etc/passwd', os.path.join(TMP, 'walk/home/pw'))
files(w, 'component walk')

# pty
m = r.call({'op': 'pty.open', 'cols': 80, 'rows': 24})
check(m.get('ok') is True, 'pty.open (%s)' % m.get('shell'))
num = m.get('pty')
r.send({'op': 'pty.resize', 'pty': num, 'cols': 100, 'rows': 30})
r.send({'op': 'pty.input', 'pty': num, 'data_b64': base64.b64encode(b'stty size; echo h""i\n').decode()})
out = b''
deadline = time.time() + 5
while time.time() < deadline and b'hi\r\n' not in out:
    m = r.wait(lambda m: m.get('op') == 'pty.output', max(0.01, deadline - time.time()))
    out += base64.b64decode(m['data_b64'])
check(b'hi\r\n' in out, 'pty: echo hi appears in the output')
check(b'30 100' in out, 'pty: resize reaches the terminal')
r.send({'op': 'pty.input', 'pty': num, 'data_b64': base64.b64encode(b'exit 5\n').decode()})
m = r.wait(lambda m: m.get('op') == 'pty.exit', 5)
check(m.get('exitCode') == 5, 'pty: shell exit reported')

# Services
m = r.call({'op': 'service.start', 'name': 'web'}, timeout=20)
check(m.get('ok') is True and m.get('started') is True, 'service.start web -> its port answers')
m = r.call({'op': 'service.start', 'name': 'web'})
check(m.get('ok') is True and m.get('started') is False, 'service.start again -> already running')
m = r.call({'op': 'service.start', 'name': 'nope'})
check(m.get('error') == 'not-found', 'unknown service -> not-found')
m = r.call({'op': 'service.start', 'name': 'notes'})
check(m.get('ok') is False, 'preopen port cannot be started')

# Batch and the startup command (an `app` runtime: shell kernel)
b = Runner('batch')
check(b.hello.get('runtimeType') == 'app', 'runtime type from the environment')
m = b.wait(lambda m: m.get('op') == 'startup.finished', 5)
check(m.get('exitCode') == 4 and m['console'] == [['stdout', 'starting\n']],
      'startup command exit code reported')
m = b.run('', mode='batch', options={'clean': 'echo c', 'build': 'echo b; exit 2', 'exec': 'touch ran'})
check([x['status'] for x in m] == ['clean-finished', 'build-finished'] and m[0]['exitCode'] == 0 and
      m[1]['exitCode'] == 2 and m[1]['final'] and text(m) == 'c\nb\n' and
      not os.path.exists(os.path.join(TMP, 'batch/home/ran')),
      'batch build failure -> build-finished exitCode 2, exec not run')
m = b.run('', mode='batch', options={'clean': '*', 'build': 'echo b > built', 'exec': 'cat built; pwd'})
check([x['status'] for x in m] == ['build-finished', 'finished'] and m[-1]['exitCode'] == 0 and
      text(m) == 'b\n' + os.path.realpath(os.path.join(TMP, 'batch/home')) + '\n',
      'batch build + exec in /home/work')
m = b.run('sleep 10', mode='batch', options={'exec': 'sleep 10', 'timeout': 0.3})
check(m[-1]['status'] == 'exec-timeout', 'batch timeout -> exec-timeout')
m = b.run('echo $((6*7))')
check(text(m) == '42\n' and m[-1]['exitCode'] == 0, 'shell kernel query')

if failures:
    print('%d failure(s)' % len(failures))
    sys.exit(1)
print('all passed')
PYEOF
rc=$?
# A clean stop on SIGTERM (exit 0; in an ASan build this is also where leaks would show).
for i in "${!PIDS[@]}"; do
    kill "${PIDS[$i]}" 2>/dev/null
    wait "${PIDS[$i]}"
    st=$?
    if [ $st -ne 0 ]; then
        echo "FAIL runner ${PIDS[$i]} exited with $st on SIGTERM"
        rc=1
    fi
done
PIDS=()
if [ $rc -ne 0 ]; then
    for n in main walk batch; do echo "--- $n log"; cat "$TMP/$n/log"; done
fi
exit $rc
