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


def advisor_env(**extra: str) -> dict[str, str]:
    """This environment without ADVISOR_* and SLACK_* settings, offline, plus `extra`.

    ADVISOR_ENCODER_CACHE_DIR is kept: under pytest it is the session's one ONNX export
    (tests/conftest.py), which each process would otherwise make again in its own folder.
    """
    keep = ("ADVISOR_ENCODER_CACHE_DIR",)
    env = {k: v for k, v in os.environ.items() if k in keep or not k.startswith(("ADVISOR_", "SLACK_"))}
    env.update(
        HF_HUB_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        GRADIO_ANALYTICS_ENABLED="False",
        RAGAS_DO_NOT_TRACK="true",
        NO_PROXY="localhost,127.0.0.1",
        no_proxy="localhost,127.0.0.1",
        **extra,
    )
    return env


class AdvisorProcess:
    """One advisor process (web page or Slack endpoint) with its log in its own folder."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], folder: Path, port: int) -> None:
        self.name, self.port, self.folder = name, port, folder
        self.log_path = folder / f"{name}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(command, env=env, cwd=folder, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(self, ready, timeout: float = 300.0) -> None:
        """Until `ready(self)`; RuntimeError with the log's tail if it exits or takes too long."""
        deadline = time.monotonic() + timeout
        while not ready(self):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not become ready:\n{self.log()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def web_ready(process: AdvisorProcess) -> bool:
    """The page answers its API description."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{process.port}/gradio_api/info", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def slack_ready(process: AdvisorProcess) -> bool:
    """`advisor slack --http` has printed its endpoint."""
    return "Slack events endpoint" in process.log()


def start_web(folder: Path, **settings: str) -> AdvisorProcess:
    """`python app.py` on a free port, its data folder `folder` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = advisor_env(**settings, ADVISOR_DATA_DIR=str(folder), ADVISOR_UI_PORT=str(port))
    root = Path(__file__).resolve().parent.parent
    return AdvisorProcess(folder.name, [sys.executable, str(root / "app.py")], env, folder, port)


def start_slack(folder: Path, **settings: str) -> AdvisorProcess:
    """`advisor slack --http` on a free port, its data folder `folder` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = advisor_env(**settings, ADVISOR_DATA_DIR=str(folder))
    command = [sys.executable, "-m", "advisor", "slack", "--http", "--port", str(port)]
    return AdvisorProcess(folder.name, command, env, folder, port)


def ingest_into(folder: Path, **settings: str) -> None:
    """`advisor ingest` with these settings (e.g. ADVISOR_CHROMA_URL); RuntimeError on failure."""
    result = subprocess.run(
        [sys.executable, "-m", "advisor", "ingest"],
        env=advisor_env(**settings, ADVISOR_DATA_DIR=str(folder)),
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"advisor ingest failed:\n{result.stderr[-2000:]}")


def new_database(server_url: str, prefix: str = "advisor") -> str:
    """A new empty database on a PostgreSQL server; its URL."""
    import uuid

    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"
