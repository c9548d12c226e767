"""Peak memory of a running `der intake` while a stranger streams a large chunked body at its webhook.

Starts `der intake` (webhook on a free loopback port, bearer token set, its own data home),
reads its VmRSS, sends ``--mb`` megabytes as a chunked POST /instructions with no credentials
(stopping as soon as the server answers or closes), then reads its peak (VmHWM). Prints one JSON
object: the answer, the bytes the client got to send, RSS before and the peak, in MB.

    python benchmarks/webhook_upload_memory.py --mb 500
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _vm(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=500)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = Path(tempfile.mkdtemp(prefix="der-upload-bench-"))
    env = {**os.environ, "DER_HOME": str(home), "DER_WEBHOOK_BEARER_TOKEN": "bench-token"}
    env.pop("DER_WAREHOUSE_URL", None)
    env.pop("DER_OPENADR_VTN_URL", None)
    der = str(Path(sys.executable).with_name("der"))
    ready = home / "intake_ready.json"
    proc = subprocess.Popen([der, "intake", "--port", str(port), "--ready-file", str(ready)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("der intake did not start")
            time.sleep(0.2)
        time.sleep(1.0)
        before = _vm(proc.pid, "VmRSS")
        chunk = b"%x\r\n" % (1 << 20) + b"x" * (1 << 20) + b"\r\n"
        sent, answer = 0, b""
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.sendall(b"POST /instructions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            while sent < args.mb << 20:
                if select.select([sock], [], [], 0)[0]:
                    break
                try:
                    sock.sendall(chunk)
                except OSError:
                    break
                sent += 1 << 20
            try:
                answer = sock.recv(200)
            except OSError:
                pass
        elapsed = time.perf_counter() - started
        peak = _vm(proc.pid, "VmHWM")
        print(json.dumps({"offered_mb": args.mb, "sent_mb": round(sent / 2**20, 1),
                          "status_line": answer.split(b"\r\n", 1)[0].decode(errors="replace"),
                          "rss_before_mb": round(before, 1), "peak_rss_mb": round(peak, 1),
                          "growth_mb": round(peak - before, 1), "seconds": round(elapsed, 2)}))
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
