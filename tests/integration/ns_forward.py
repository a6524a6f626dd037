# SPDX-License-Identifier: Apache-2.0
"""Test helper: listen on 127.0.0.1:PORT inside network namespaces, connect to 127.0.0.1:PORT
in ours. usage: ns_forward.py PORT[,PORT..] NETNS_PATH..."""
import ctypes, os, socket, sys, threading

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns " + path)
    finally:
        os.close(fd)


def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(lst, port):
    while True:
        c, _ = lst.accept()
        try:
            u = socket.create_connection(("127.0.0.1", port))  # made in our own namespace
        except OSError:
            c.close()
            continue
        threading.Thread(target=pipe, args=(c, u), daemon=True).start()
        threading.Thread(target=pipe, args=(u, c), daemon=True).start()


def main():
    ports = [int(p) for p in sys.argv[1].split(",") if p]
    home = "/proc/self/ns/net"
    home_fd = os.open(home, os.O_RDONLY)
    listeners = []
    for ns in sys.argv[2:]:
        setns(ns)
        for p in ports:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p))
            s.listen(64)
            listeners.append((s, p))
        if libc.setns(home_fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
    for s, p in listeners:
        threading.Thread(target=serve, args=(s, p), daemon=True).start()
    print("forwarding", ports, flush=True)
    threading.Event().wait()


main()
