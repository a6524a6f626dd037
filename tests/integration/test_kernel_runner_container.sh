#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The static kernel runner inside a busybox container (crun): no shared libraries there, so
# this shows it needs none. A shell query and a file upload go through the bind-mounted socket.
# Usage: test_kernel_runner_container.sh BUILD_DIR   (77 = skipped: not root, or no crun/busybox)
set -u
BUILD=${1:-$(dirname "$0")/../../build}
RUNNER=$(cd "$BUILD" && pwd)/core/kernel-runner/baic-kernel-runner
BUSYBOX=$(command -v busybox || true)
PY=$(command -v python3 || true)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v crun >/dev/null && [ -n "$BUSYBOX" ] && [ -n "$PY" ] || { echo "SKIP: crun, busybox or python3 missing"; exit 77; }
file -L "$BUSYBOX" | grep -q 'statically linked' || { echo "SKIP: busybox is not static"; exit 77; }
[ -x "$RUNNER" ] || { echo "FAIL: $RUNNER not built"; exit 1; }
if ! file -L "$RUNNER" | grep -q 'statically linked'; then
    echo "SKIP: the runner is dynamic (sanitizer build)"
    exit 77
fi

# crun refuses hybrid cgroup hosts; as runtime/oci does, hide the cgroup2 mount from it.
crun() {
    if [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
        unshare --mount --propagation private /bin/sh -c \
            'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"' crun "$@"
    else
        command crun "$@"
    fi
}

TMP=$(mktemp -d /tmp/baic-kr-ctr.XXXXXX)
ID=baic-kr-test-$$
cleanup() {
    [ -n "${KEEP:-}" ] && return; crun kill "$ID" KILL 2>/dev/null
    crun delete -f "$ID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

# A busybox image as contrib/images builds it: /bin/busybox and one link per applet.
R=$TMP/bundle/rootfs
mkdir -p "$R/bin" "$R/home/work" "$R/opt/backend.ai/bin" "$R/tmp" "$R/proc" "$R/dev" "$TMP/sock"
cp "$BUSYBOX" "$R/bin/busybox"
for a in $("$BUSYBOX" --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
(cd "$TMP/bundle" && command crun spec)
"$PY" - "$TMP/bundle/config.json" "$RUNNER" "$TMP/sock" <<'PYEOF'
import json, sys
path, runner, sock = sys.argv[1:]
c = json.load(open(path))
c['process']['terminal'] = False
c['process']['args'] = ['/opt/backend.ai/bin/baic-kernel-runner']
c['process']['cwd'] = '/home/work'
c['process']['env'] = ['PATH=/bin', 'BACKENDAI_RUNTIME_TYPE=app', 'BACKENDAI_RUNTIME_PATH=/bin/sh',
                       'BACKENDAI_RUNNER_SOCKET=/opt/backend.ai/sock/runner.sock']
c['root']['readonly'] = False
c['mounts'] += [
    {'destination': '/opt/backend.ai/bin/baic-kernel-runner', 'type': 'bind', 'source': runner,
     'options': ['bind', 'ro', 'nosuid', 'nodev']},
    {'destination': '/opt/backend.ai/sock', 'type': 'bind', 'source': sock, 'options': ['bind', 'rw']},
]
json.dump(c, open(path, 'w'))
PYEOF
mkdir -p "$R/opt/backend.ai/sock"
crun run -d --bundle "$TMP/bundle" "$ID" >"$TMP/crun.log" 2>&1 || { echo "FAIL: crun run"; cat "$TMP/crun.log"; exit 1; }

"$PY" - "$TMP/sock/runner.sock" <<'PYEOF'
import base64, json, os, socket, sys, time
path = sys.argv[1]
deadline = time.time() + 10
while not os.path.exists(path):
    if time.time() > deadline:
        print('FAIL: no runner socket in the container'); sys.exit(1)
    time.sleep(0.05)
s = socket.socket(socket.AF_UNIX); s.connect(path); s.settimeout(10)
f = s.makefile('rwb')
def call(m):
    f.write((json.dumps(m) + '\n').encode()); f.flush()
    while True:
        r = json.loads(f.readline())
        if r.get('id') == m['id'] and (r.get('final') or 'ok' in r):
            return r
hello = json.loads(f.readline())
ok = hello.get('op') == 'hello' and hello.get('runtimeType') == 'app'
r = call({'id': 1, 'op': 'execute', 'mode': 'query', 'code': 'echo in-$(hostname); ls /opt/backend.ai/bin; exit 3'})
ok = ok and r['exitCode'] == 3 and 'baic-kernel-runner' in r['console'][0][1]
u = call({'id': 2, 'op': 'files.upload', 'path': 'a/b.txt', 'data_b64': base64.b64encode(b'hey').decode()})
r2 = call({'id': 3, 'op': 'execute', 'mode': 'query', 'code': 'cat /home/work/a/b.txt'})
ok = ok and u.get('ok') and r2['console'] == [['stdout', 'hey']]
bad = call({'id': 4, 'op': 'files.download', 'path': '../../etc/passwd'})
ok = ok and bad.get('ok') is False
print(('ok   ' if ok else 'FAIL ') + 'runner in a busybox container: %s / %s / %s' % (r, u, r2))
sys.exit(0 if ok else 1)
PYEOF
