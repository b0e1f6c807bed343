"""Real shared services on loopback for the tests and benchmarks: PostgreSQL and a Chroma server.

- `postgres_server()`: Debian's PostgreSQL (`initdb` and `pg_ctl`, found in
  /usr/lib/postgresql/*/bin when they are not on PATH) in a temporary folder on a free port,
  listening on 127.0.0.1 only. As root it runs as the `postgres` user (initdb refuses root).
- `chroma_server()`: `chroma run` from this virtual environment on a free port.

Each yields its URL and stops its server (and removes its folder) on exit.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin(name: str) -> str | None:
    """`initdb`, `pg_ctl`...: on PATH, or where Debian keeps them."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def postgres_missing() -> str | None:
    """Why PostgreSQL cannot be started here, or None."""
    for name in ("initdb", "pg_ctl"):
        if postgres_bin(name) is None:
            return f"{name} not found (apt-get install postgresql)"
    return None


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@contextmanager
def postgres_server(timeout: float = 60.0) -> Iterator[str]:
    """A throwaway PostgreSQL cluster; yields a SQLAlchemy URL (psycopg 3 driver)."""
    missing = postgres_missing()
    if missing:
        raise RuntimeError(missing)
    folder = Path(tempfile.mkdtemp(prefix="advisor-pg-"))
    data, sockets = folder / "data", folder / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    log_file = folder / "server.log"
    try:
        subprocess.run(
            _as_postgres(
                [postgres_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
        subprocess.run(
            _as_postgres(
                [postgres_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(log_file), "-w", "start"]
            ),
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if data.exists():
            subprocess.run(
                _as_postgres([postgres_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                check=False,
                capture_output=True,
                timeout=timeout,
            )
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def chroma_server(path: Path | None = None, timeout: float = 60.0) -> Iterator[str]:
    """A real `chroma run` on loopback; yields its URL."""
    folder = Path(tempfile.mkdtemp(prefix="advisor-chroma-")) if path is None else path
    port = free_port()
    chroma = Path(sys.executable).with_name("chroma")
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    log_file = (folder.parent / f"{folder.name}.log").open("w")
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with code {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("chroma run did not answer its heartbeat") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()
        if path is None:
            shutil.rmtree(folder, ignore_errors=True)
