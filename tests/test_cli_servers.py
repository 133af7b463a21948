"""``jfx serve`` and ``jfx ui`` as a user starts them: the address they really bind, and that they answer.

The bound address is read from the kernel's socket table, not from the URL the command
prints (which is built from the host it was asked for, whatever it bound).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jax.numpy as jnp
import pytest
from jfx.core import TensorSpec, export
from jfx.metadata import MetadataStore
from jfx_requires import importorskip
from jfx_sockets import can_read_proc_net, listening_addresses

pytestmark = pytest.mark.skipif(not can_read_proc_net(), reason="needs Linux's /proc/net/tcp")

_URL = re.compile(r"http://\S+?:(\d+)/")
_GRPC = re.compile(r"gRPC at (\S+):(\d+)")


class Server:
    """A server command in a subprocess; its port is read from the URL it prints first."""

    def __init__(self, args: list[str]):
        env = {k: v for k, v in os.environ.items() if k not in ("JFX_METADATA_URL", "JFX_UI_TOKEN")}
        self.proc = subprocess.Popen([sys.executable, "-m", "jfx", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.port = self._port_from_output(timeout=120)

    def _port_from_output(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if sel.select(timeout=0.5):
                    line = self.proc.stdout.readline()
                    if m := _URL.search(line):
                        self.line = line
                        return int(m.group(1))
                    if not line:  # stdout closed: the process ended
                        break
            self.proc.kill()
            _, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"no URL printed; exit status {self.proc.returncode}; stderr: {err}")

    def get(self, path: str, timeout: float = 60) -> tuple[int, bytes]:
        """GET from the server, retrying while it starts; fails at once if the process has ended."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with status {self.proc.returncode} before answering: "
                                     f"{self.proc.stderr.read()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as err:
                return err.code, err.read()
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def _fn(p, f):
    return {"y": f["x"] * p["w"]}


@pytest.fixture(scope="module")
def model_base(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("served") / "m"
    base.mkdir()
    export(_fn, {"w": jnp.float32(2.0)}, {"x": TensorSpec("float32")}, base / "1")
    return base


def _as_ipv4(address: str) -> str:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return "0.0.0.0" if ip.is_unspecified else str(ip.ipv4_mapped or ip)
    return address


@pytest.fixture(scope="module")
def store_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'metadata.sqlite'}"
    MetadataStore(url).close()
    return url


@pytest.mark.parametrize("host,bound", [(None, "127.0.0.1"), ("0.0.0.0", "0.0.0.0")], ids=["default", "all"])
def test_jfx_serve_binds_the_address_it_is_given(model_base, host, bound):
    server = Server(["serve", "--model_base_path", str(model_base), "--model_name", "m", "--port", "0",
                     "--grpc_port", "0", "--poll_interval_s", "0", *(["--host", host] if host else [])])
    try:
        status, body = server.get("/v1/models/m")
        assert status == 200 and json.loads(body)["model_version_status"][0]["state"] == "AVAILABLE"
        assert listening_addresses(server.port) == {bound}
        req = urllib.request.Request(f"http://127.0.0.1:{server.port}/v1/models/m:predict",
                                     data=json.dumps({"instances": [{"x": 1.5}]}).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert json.loads(resp.read()) == {"predictions": [3.0]}
        # TF Serving's gRPC API beside it (--grpc_port), on the same address
        grpc = importorskip("grpc", hint="pip install 'jfx[grpc]'")
        from jfx.core._tfs_proto import get_model_status_pb2, model_service_pb2_grpc

        grpc_host, grpc_port = _GRPC.search(server.line).groups()
        # gRPC listens on a dual-stack socket: 127.0.0.1 as ::ffff:127.0.0.1, 0.0.0.0 as :: (every address)
        assert grpc_host == bound and {_as_ipv4(a) for a in listening_addresses(int(grpc_port))} == {bound}
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = "m"
            status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
        assert [(s.version, s.state) for s in status.model_version_status] == [
            (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    finally:
        server.stop()


@pytest.mark.parametrize("host,bound", [(None, "127.0.0.1"), ("0.0.0.0", "0.0.0.0")], ids=["default", "all"])
def test_jfx_ui_binds_the_address_it_is_given_and_answers(store_url, host, bound):
    server = Server(["ui", "--metadata-url", store_url, "--port", "0", *(["--host", host] if host else [])])
    try:
        status, body = server.get("/api/pipelines")
        assert status == 200 and json.loads(body) == {"pipelines": []}
        status, page = server.get("/")
        assert status == 200 and b"<html" in page.lower()
        assert listening_addresses(server.port) == {bound}
        assert server.proc.poll() is None, "the UI keeps serving"
    finally:
        server.stop()


def test_a_ui_that_cannot_start_is_reported_not_waited_on(tmp_path):
    # the check the tests above rely on: a server that exits fails the test, it does not pass it
    with pytest.raises(AssertionError, match="no URL printed"):
        Server(["ui", "--metadata-url", f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.sqlite'}", "--port", "0"])
