# SPDX-License-Identifier: Apache-2.0
# The Python query driver of baic-kernel-runner: runs code chunks in one persistent namespace.
#
# Embedded into the runner at build time and started as `python3 -u -c <this>`. It reads
# frames (1 kind byte, 4-byte big-endian length, body) from fd 3 and writes frames to fd 4:
#   runner -> driver: x code | i input line | c completion request (JSON)
#   driver -> runner: r ready | o stdout | e stderr | m media (JSON [mime, data])
#                     | i input wanted (JSON {prompt, password}) | f exit code | c matches (JSON)
import base64
import builtins
import io
import json
import os
import signal
import struct
import sys
import traceback
import types

_CMD, _EVT = 3, 4
os.set_inheritable(_CMD, False)
os.set_inheritable(_EVT, False)

# SIGINT becomes KeyboardInterrupt only while user code runs; arriving anywhere else (in
# the middle of writing a frame, or between runs) it must not corrupt the frame stream.
_st = {'user': False, 'pending': False}


def _on_sigint(signum, frame):
    if _st['user']:
        raise KeyboardInterrupt
    _st['pending'] = True


signal.signal(signal.SIGINT, _on_sigint)


def _send(kind, data):
    if isinstance(data, str):
        data = data.encode('utf-8', 'surrogateescape')
    user = _st['user']
    _st['user'] = False
    try:
        view = memoryview(kind + struct.pack('>I', len(data)) + bytes(data))
        while view:
            view = view[os.write(_EVT, view):]
    finally:
        _st['user'] = user
    if user and _st['pending']:
        _st['pending'] = False
        raise KeyboardInterrupt


def _read(n):
    out = bytearray()
    while len(out) < n:
        chunk = os.read(_CMD, n - len(out))
        if not chunk:
            os._exit(0)
        out += chunk
    return bytes(out)


def _recv():
    # The runner writes a whole frame at once, so an interrupt can only land before the
    # header; the body is read with interrupts held back.
    head = _read(5)
    user = _st['user']
    _st['user'] = False
    try:
        body = _read(struct.unpack('>I', head[1:])[0])
    finally:
        _st['user'] = user
    return head[:1], body


class _BinOut:
    def __init__(self, kind):
        self._kind = kind

    def write(self, b):
        b = bytes(b)
        if b:
            _send(self._kind, b)
        return len(b)

    def flush(self):
        pass


class _Out(io.TextIOBase):
    encoding = 'utf-8'
    errors = 'surrogateescape'

    def __init__(self, kind, fd):
        self._kind = kind
        self._fd = fd
        self.buffer = _BinOut(kind)

    def writable(self):
        return True

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError('write() argument must be str, not %s' % type(s).__name__)
        if s:
            _send(self._kind, s)
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False

    def fileno(self):
        return self._fd


def _input(prompt='', password=False):
    prompt = str(prompt)
    if prompt:
        _out.write(prompt)
    _send(b'i', json.dumps({'prompt': prompt, 'password': bool(password)}))
    while True:
        kind, body = _recv()
        if kind == b'i':
            line = body.decode('utf-8', 'surrogateescape')
            return line[:-1] if line.endswith('\n') else line
        if kind == b'c':
            _send(b'c', '[]')


class _In(io.TextIOBase):
    encoding = 'utf-8'

    def readable(self):
        return True

    def readline(self, size=-1):
        return _input() + '\n'

    def read(self, size=-1):
        return self.readline()

    def fileno(self):
        return 0


def _display(mime, data):
    """Show data (bytes or str) of type mime as a media item of the run's console."""
    if isinstance(data, (bytes, bytearray)):
        data = base64.b64encode(bytes(data)).decode('ascii')
    _send(b'm', json.dumps([str(mime), str(data)]))


_out = _Out(b'o', 1)
_err = _Out(b'e', 2)
sys.stdout = _out
sys.stderr = _err
sys.stdin = _In()
sys.argv = ['']
builtins.input = _input
try:
    import getpass
    getpass.getpass = lambda prompt='Password: ', stream=None: _input(prompt, True)
except ImportError:
    pass
_mod = types.ModuleType('baic_display')
_mod.display = _display
sys.modules['baic_display'] = _mod

_ns = {'__name__': '__main__', '__builtins__': builtins}
_driver_globals = globals()


def _run(code):
    rc = 0
    _st['pending'] = False
    try:
        co = compile(code, '<input>', 'exec')
        _st['user'] = True
        try:
            exec(co, _ns)
        finally:
            _st['user'] = False
    except SystemExit as e:
        if e.code is None:
            rc = 0
        elif isinstance(e.code, int):
            rc = e.code
        else:
            _err.write(str(e.code) + '\n')
            rc = 1
    except BaseException as e:
        rc = 1
        tb = e.__traceback__
        # The user sees their own frames, not the driver's.
        while tb is not None and tb.tb_frame.f_globals is _driver_globals:
            tb = tb.tb_next
        _err.write(''.join(traceback.format_exception(type(e), e, tb)))
    _send(b'f', str(rc))


def _complete(req):
    import importlib
    import pkgutil
    import re
    import rlcompleter
    line = req.get('line') or ''
    if not line:
        line = (req.get('code') or '').split('\n')[-1]
    col = req.get('col')
    if isinstance(col, int) and 0 <= col <= len(line):
        line = line[:col]
    m = re.match(r'\s*(?:import|from)\s+([\w.]*)$', line)
    if m:
        prefix = m.group(1)
        pkg, _, _ = prefix.rpartition('.')
        if pkg:
            try:
                path = getattr(importlib.import_module(pkg), '__path__', None)
            except Exception:
                path = None
            names = [pkg + '.' + i.name for i in pkgutil.iter_modules(path)] if path else []
        else:
            names = list(sys.builtin_module_names) + [i.name for i in pkgutil.iter_modules()]
        return sorted({n for n in names if n.startswith(prefix)})
    text = re.search(r'[\w.]*$', line).group(0)
    if not text:
        return []
    completer = rlcompleter.Completer(_ns)
    out = []
    for i in range(500):
        r = completer.complete(text, i)
        if r is None:
            break
        out.append(r)
    return out


_send(b'r', str(os.getpid()))
while True:
    _kind, _body = _recv()
    if _kind == b'x':
        _run(_body.decode('utf-8', 'surrogateescape'))
    elif _kind == b'c':
        try:
            _res = _complete(json.loads(_body))
        except Exception:
            _res = []
        _send(b'c', json.dumps(_res))
