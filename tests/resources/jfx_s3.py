"""An S3 API server on loopback for the tests: moto's server mode, started by the fixtures.

One server per test session (a subprocess on a free port of 127.0.0.1, path-style
addressing, test credentials); each test gets a bucket of its own. Settings reach jfx,
s3fs, boto3 and MLflow the usual way, through ``AWS_ENDPOINT_URL`` and
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``; ``$HOME/.aws`` is never read.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from jfx_requires import importorskip, unavailable

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class S3Server:
    """A running moto S3 server: ``endpoint``, ``env()``, ``bucket()``, ``stop()``."""

    def __init__(self, workdir: Path, auth: bool = False) -> None:
        """Start the server; with ``auth``, requests after the first (which makes a bucket) must
        carry credentials the server knows, so any key pair the tests make up is refused."""
        importorskip("moto", hint="pip install 'moto[server]'")
        importorskip("s3fs", hint="pip install s3fs")
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
        if exe is None:
            unavailable("moto_server is not installed (pip install 'moto[server]')")
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "moto.log"
        workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=out,
                                         stderr=subprocess.STDOUT,
                                         env={**os.environ, **CREDENTIALS,
                                              **({"INITIAL_NO_AUTH_ACTION_COUNT": "1"} if auth else {})})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                unavailable(f"moto_server exited at start: {self.log.read_text(errors='replace')[-400:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        unavailable("moto_server did not start listening within 30 s")

    def env(self) -> dict[str, str]:
        """The environment that points every client at this server."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint, "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "MLFLOW_S3_ENDPOINT_URL": self.endpoint}

    def bucket(self, prefix: str = "jfx") -> str:
        """A new, empty bucket's name."""
        import boto3

        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint, **_boto(CREDENTIALS)).create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _boto(creds: dict[str, str]) -> dict[str, str]:
    return {"aws_access_key_id": creds["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": creds["AWS_SECRET_ACCESS_KEY"],
            "region_name": creds["AWS_DEFAULT_REGION"]}


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in front of the S3 server that can fail like a dying server.

    ``cut_after(n)``: once ``n`` more bytes went from clients to the server, every
    connection is dropped and new ones are refused (the port is closed) until
    ``restore()``. The server behind it keeps its objects, as a restarted one would.
    """

    def __init__(self, target_port: int) -> None:
        import threading

        self.target_port = target_port
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._budget: int | None = None
        self.cut_count = 0
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._budget = None
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut_after(self, nbytes: int) -> None:
        with self._lock:
            self._budget = nbytes

    def cut(self) -> None:
        with self._lock:
            self._budget = None
            self.cut_count += 1
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            listener.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self, listener: socket.socket) -> None:
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while data := src.recv(65536):
                if counted:
                    with self._lock:
                        over = self._budget is not None and len(data) >= self._budget
                        if self._budget is not None:
                            self._budget -= len(data)
                    if over:
                        self.cut()
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass
