#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A plain HTTP client for the storage benchmark that moves the body in 1 MiB blocks (curl
# writes a download in ~8 KiB pieces, which caps any server at curl's pace).
#   xfer.py get URL OUT          download URL into OUT
#   xfer.py put URL IN [H:V ...] upload IN as the body of a PUT (or PATCH with -X PATCH)
import http.client, shutil, sys, urllib.parse

BLOCK = 1 << 20


def conn(url):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, blocksize=BLOCK)
    return c, u.path + ("?" + u.query if u.query else "")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "get":
        c, path = conn(sys.argv[2])
        c.request("GET", path)
        r = c.getresponse()
        if r.status not in (200, 206):
            sys.exit("GET %s: %d" % (sys.argv[2], r.status))
        with open(sys.argv[3], "wb") as f:
            shutil.copyfileobj(r, f, BLOCK)
        return
    if len(sys.argv) >= 4 and sys.argv[1] in ("put", "patch"):
        c, path = conn(sys.argv[2])
        headers = dict(h.split(":", 1) for h in sys.argv[4:])
        with open(sys.argv[3], "rb") as f:
            f.seek(0, 2)
            headers["Content-Length"] = str(f.tell())
            f.seek(0)
            c.request(sys.argv[1].upper(), path, body=f, headers=headers)
        r = c.getresponse()
        r.read()
        if r.status >= 300:
            sys.exit("%s %s: %d" % (sys.argv[1], sys.argv[2], r.status))
        return
    sys.exit(__doc__ or "usage: xfer.py get URL OUT | put|patch URL IN [Header:Value ...]")


main()
