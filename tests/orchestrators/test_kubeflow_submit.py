"""jfx submit / KubeflowDagRunner.submit against a Kubeflow Pipelines API server (v2beta1) on loopback
(tests/resources/jfx_kfp_api.py) that answers as the backend does where jfx depends on it: healthz with the release's tag_name and
multi_user (backend/src/apiserver/main.go), experiments refused without a namespace in multi-user
mode (backend/src/apiserver/server/experiment_server.go), pipelines and uploaded versions, runs."""

from __future__ import annotations

import datetime
import ipaddress
import re

import jfx_testlib as lib
import pytest
from jfx_kfp_api import FakeKfp
from jfx_requires import importorskip

from jfx import Pipeline, RuntimeParameter
from jfx.cli import main as jfx_main
from jfx.errors import InvalidArgumentError

importorskip("kfp", hint="pip install kfp", allow_module_level=True)

from jfx.components import ExampleGen
from jfx.orchestrators import KubeflowDagRunner
from jfx.orchestrators._kubeflow import node_task_names

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

IMAGE = "registry.example/jfx:0.1"
ROOT = "/mnt/jfx/artifacts"
DB = "postgresql+psycopg://jfx@db.example.internal/jfx"


def cluster_runner(**kwargs):
    return KubeflowDagRunner(IMAGE, pipeline_root=ROOT, metadata_url=DB, volumes={"/mnt/jfx": "jfx-pvc"}, **kwargs)


def options_pipeline():
    nums = lib.make_numbers(rows=RuntimeParameter("rows", int, default=3), note=RuntimeParameter("note", str))
    nums.with_resources(cpu=2, memory="4Gi", gpu=1).with_retry(2, backoff_s=5).with_timeout(30)
    tot = lib.total(numbers=nums.outputs["numbers"]).with_cache(False)
    who = lib.whoami().after(tot)
    return Pipeline("Opts_demo", components=[nums, tot, who])


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    """The API server over https on 127.0.0.1, its certificate signed by a CA made here; (server, CA file)."""
    importorskip("cryptography", hint="pip install cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("KF_PIPELINES_SA_TOKEN_PATH", "KF_PIPELINES_TOKEN", "KF_PIPELINES_COOKIES",
                 "KF_PIPELINES_DEFAULT_EXPERIMENT_NAME", "KF_PIPELINES_UI_ENDPOINT", "SSL_CERT_FILE", "SSL_CERT_DIR",
                 "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject, issuer, key, signer, *, ca, san=None):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                decipher_only=False), critical=True)
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jfx test CA")])
    ca_cert = cert(ca_name, ca_name, ca_key, ca_key, ca=True)
    server_cert = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name, server_key,
                       ca_key, ca=False, san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (tmp_path / "server.pem").write_bytes(server_cert.public_bytes(pem))
    (tmp_path / "server.key").write_bytes(server_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    server = FakeKfp(tls=(str(tmp_path / "server.pem"), str(tmp_path / "server.key")))
    server.thread.start()
    try:
        yield server, tmp_path / "ca.pem"
    finally:
        server.server.shutdown()
        server.server.server_close()


@pytest.fixture
def package(tmp_path):
    return cluster_runner().compile(options_pipeline(), tmp_path / "p.yaml")


def test_submit_creates_a_run_with_the_spec_and_parameters(kfp_server):
    run = cluster_runner().submit(options_pipeline(), kfp_server.url, experiment="nightly",
                                  params={"rows": "5", "note": "hi"}, run_name="first", token="s3cret")
    assert run.run_id == "run-123" and run.experiment_id == "exp-1"
    assert run.url == f"{kfp_server.url}/#/runs/details/run-123"
    assert run.jfx_run_id == "Opts_demo-kfp-run-123"
    [(_, _, headers, experiment)] = kfp_server.posts("/apis/v2beta1/experiments")
    assert experiment == {"display_name": "nightly"}  # no namespace given: none sent (not "")
    assert all("namespace" not in q for path, q in kfp_server.queries if path == "/apis/v2beta1/experiments")
    [(_, _, headers, body)] = kfp_server.posts("/apis/v2beta1/runs")
    assert headers["authorization"] == "Bearer s3cret"
    assert body["display_name"] == "first" and body["experiment_id"] == "exp-1"
    assert body["runtime_config"]["parameters"] == {"rows": 5, "note": "hi"}  # typed as the spec declares
    spec, platform = body["pipeline_spec"]["pipeline_spec"], body["pipeline_spec"]["platform_spec"]
    assert spec["pipelineInfo"]["name"] == "opts-demo"
    assert {e["pvcMount"][0]["mountPath"] for e in platform["platforms"]["kubernetes"]["deploymentSpec"]
            ["executors"].values()} == {"/mnt/jfx"}
    assert set(node_task_names(spec).values()) == {"make_numbers", "total", "whoami"}
    assert spec["root"]["inputDefinitions"]["parameters"]["rows"]["parameterType"] == "NUMBER_INTEGER"
    # the server was asked its version first, with the same credentials
    assert kfp_server.requests[0][1] == "/apis/v2beta1/healthz"
    assert kfp_server.requests[0][2]["authorization"] == "Bearer s3cret"


def test_submit_reads_a_service_account_token_and_checks_parameters(kfp_server, tmp_path, monkeypatch, package):
    token = tmp_path / "token"
    token.write_text("from-the-volume\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    runner = cluster_runner()
    run = runner.submit(package, kfp_server.url, params={"note": "x"})
    assert run.jfx_run_id == "Opts_demo-kfp-run-123"
    [(_, _, headers, body)] = kfp_server.posts("/apis/v2beta1/runs")
    assert headers["authorization"] == "Bearer from-the-volume"
    assert body["experiment_id"] == "exp-default"  # no experiment: Kubeflow's Default
    assert re.fullmatch(r"Opts_demo-\d{8}-\d{6}", body["display_name"])  # <pipeline>-<UTC time>
    with pytest.raises(InvalidArgumentError, match="has no parameter\\(s\\) colour; its parameters: note, rows"):
        runner.submit(package, kfp_server.url, params={"colour": "red"})
    with pytest.raises(InvalidArgumentError, match="pipeline parameter 'rows' expects number_integer, got 'many'"):
        runner.submit(package, kfp_server.url, params={"rows": "many"})
    with pytest.raises(InvalidArgumentError, match="expected the Kubeflow Pipelines address"):
        runner.submit(package, "localhost:8080")
    with pytest.raises(InvalidArgumentError, match="has no node 'Trainer'; nodes: make_numbers, total, whoami"):
        runner.submit(package, kfp_server.url, params={"jfx_from_nodes": ["Trainer"]})
    with pytest.raises(InvalidArgumentError, match=r"nope.yaml: no such compiled pipeline file"):
        runner.submit(tmp_path / "nope.yaml", kfp_server.url)
    (tmp_path / "other.yaml").write_text("name: not-a-pipeline\n")
    with pytest.raises(InvalidArgumentError, match=r"other.yaml: not a Kubeflow pipeline spec"):
        runner.submit(tmp_path / "other.yaml", kfp_server.url)
    assert len(kfp_server.posts("/apis/v2beta1/runs")) == 1


def test_an_older_backend_is_refused_in_one_line_before_anything_is_created(kfp_server, package, capsys):
    args = ["submit", package, "--host", kfp_server.url]
    kfp_server.version = "2.5.0"
    assert jfx_main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "the Kubeflow Pipelines server runs 2.5.0; jfx needs 2.14.0 or later" in err
    assert kfp_server.created() == []
    kfp_server.version = "2.14.0"
    assert jfx_main(args) == 0
    assert len(kfp_server.posts("/apis/v2beta1/runs")) == 1
    kfp_server.version = "unknown"  # a backend built without TAG_NAME: submitted, with a warning
    assert jfx_main(args) == 0
    assert "does not say its version; jfx pipelines need 2.14.0 or later" in capsys.readouterr().err
    kfp_server.server.shutdown()
    kfp_server.server.server_close()
    assert jfx_main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the Kubeflow Pipelines API" in err


def test_multi_user_mode_needs_a_namespace_and_sends_the_one_given(kfp_server, package, capsys):
    kfp_server.multi_user = True
    assert jfx_main(["submit", package, "--host", kfp_server.url, "--experiment", "team-exp"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs in multi-user mode: give your profile's namespace with --namespace" in err
    assert kfp_server.created() == []
    assert jfx_main(["submit", package, "--host", kfp_server.url, "--experiment", "team-exp",
                     "--namespace", "team-a"]) == 0
    [(_, _, _, experiment)] = kfp_server.posts("/apis/v2beta1/experiments")
    assert experiment == {"display_name": "team-exp", "namespace": "team-a"}
    listed = [q for path, q in kfp_server.queries if path == "/apis/v2beta1/experiments" and "filter" in q]
    assert listed and all(q["namespace"] == ["team-a"] for q in listed)
    assert len(kfp_server.posts("/apis/v2beta1/runs")) == 1
    assert jfx_main(["submit", package, "--host", kfp_server.url, "--namespace", ""]) == 1
    assert "--namespace '': name a namespace" in capsys.readouterr().err


def test_a_pipeline_version_is_uploaded_and_the_run_uses_it(kfp_server, package, capsys):
    args = ["submit", package, "--host", kfp_server.url, "--pipeline-name", "opts"]
    assert jfx_main([*args, "--pipeline-version", "v1"]) == 0
    [(_, _, _, created)] = kfp_server.posts("/apis/v2beta1/pipelines")
    assert created == {"display_name": "opts"}
    [version] = kfp_server.versions
    assert version["name"] == "v1" and version["pipelineid"] == "pipe-1"
    assert "pipelineInfo" in version["file"] and "opts-demo" in version["file"]  # the spec itself
    [(_, _, _, run)] = kfp_server.posts("/apis/v2beta1/runs")
    assert run["pipeline_version_reference"] == {"pipeline_id": "pipe-1", "pipeline_version_id": "ver-1"}
    assert "pipeline_spec" not in run  # the run is of the uploaded version
    # the next submit finds the pipeline; the version is named like the run by default
    assert jfx_main(args) == 0
    assert len(kfp_server.posts("/apis/v2beta1/pipelines")) == 1
    assert re.fullmatch(r"Opts_demo-\d{8}-\d{6}", kfp_server.versions[1]["name"])
    # a version name that exists: the server's refusal in one line, no run
    assert jfx_main([*args, "--pipeline-version", "v1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the server refused: HTTP 409" in err and "a version of that name exists" in err
    assert len(kfp_server.posts("/apis/v2beta1/runs")) == 2
    # --pipeline-version alone uploads under the spec's pipeline name
    assert jfx_main(["submit", package, "--host", kfp_server.url, "--pipeline-version", "v2"]) == 0
    assert set(kfp_server.pipelines) == {"opts", "Opts_demo"}


def test_the_token_and_cookies_come_from_files_or_the_environment(kfp_server, package, tmp_path, monkeypatch,
                                                                  capsys):
    kfp_server.credentials = {"Bearer from-file", "Bearer from-env", "authservice_session=abc"}
    host = ["submit", package, "--host", kfp_server.url]
    assert jfx_main(host) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the server refused the credentials (HTTP 401)" in err and "--token-file" in err
    (tmp_path / "token").write_text("from-file\n")
    assert jfx_main([*host, "--token-file", str(tmp_path / "token")]) == 0
    assert capsys.readouterr().err == ""  # no warning: the token is not on the command line
    assert {r[2]["authorization"] for r in kfp_server.requests if r[2].get("authorization")} == {"Bearer from-file"}
    monkeypatch.setenv("KF_PIPELINES_TOKEN", "from-env")
    assert jfx_main(host) == 0
    assert kfp_server.posts("/apis/v2beta1/runs")[-1][2]["authorization"] == "Bearer from-env"
    monkeypatch.delenv("KF_PIPELINES_TOKEN")
    (tmp_path / "cookies").write_text("authservice_session=abc\n")
    assert jfx_main([*host, "--cookies-file", str(tmp_path / "cookies")]) == 0
    assert kfp_server.posts("/apis/v2beta1/runs")[-1][2]["cookie"] == "authservice_session=abc"
    assert jfx_main([*host, "--token", "from-file"]) == 0  # still works, with a warning
    assert "--token shows in process lists and shell history; use --token-file" in capsys.readouterr().err
    assert jfx_main([*host, "--token-file", str(tmp_path / "missing")]) == 1
    assert "--token-file " + str(tmp_path / "missing") + ": cannot be read" in capsys.readouterr().err
    assert jfx_main([*host, "--ssl-ca-cert", str(tmp_path / "ca.pem")]) == 1
    assert "--ssl-ca-cert " + str(tmp_path / "ca.pem") + ": no such file" in capsys.readouterr().err


def test_submit_over_tls_trusts_the_ca_given_with_ssl_ca_cert(tls_server, package, tmp_path, capsys):
    server, ca = tls_server
    args = ["submit", package, "--host", server.url]
    # without the CA: refused before anything is created, in one line naming the host and the flag
    assert jfx_main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"--host {server.url}: certificate verify failed" in err and "--ssl-ca-cert FILE" in err
    assert server.requests == []  # the TLS handshake failed: no request reached the server
    # with it: the version probe and kfp's client both verify the server with that CA
    assert jfx_main([*args, "--ssl-ca-cert", str(ca)]) == 0
    assert "submitted run run-123" in capsys.readouterr().out
    assert server.requests[0][1] == "/apis/v2beta1/healthz" and len(server.posts("/apis/v2beta1/runs")) == 1
    # a file that is no CA bundle: one line naming it
    (tmp_path / "not-a-ca.pem").write_text("hello\n")
    assert jfx_main([*args, "--ssl-ca-cert", str(tmp_path / "not-a-ca.pem")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--ssl-ca-cert {tmp_path / 'not-a-ca.pem'}: not a PEM bundle" in err


def test_values_given_at_submit_are_checked_as_at_compile_time(kfp_server, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    eg = ExampleGen(input_base=RuntimeParameter("new_data", str, default="/mnt/jfx/data"))
    package = cluster_runner().compile(Pipeline("eg", components=[eg]), tmp_path / "eg.yaml")
    args = ["submit", package, "--host", kfp_server.url]

    def refused(*more, lines=1):
        assert jfx_main([*args, *more]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == lines, err
        return err

    err = refused("--param", f"new_data={data}")
    assert f"node 'ExampleGen': parameter input_base={str(data)!r} (from --param 'new_data') is a local path" in err
    err = refused("--param", "jfx_metadata_url=postgresql+psycopg://jfx:hunter2@db.example.internal/jfx")
    assert "carries a password" in err and "--metadata-secret" in err and "hunter2" not in err
    # as at compile time, with the fix (four lines)
    err = refused("--param", "jfx_metadata_url=sqlite:////tmp/md.sqlite", lines=4)
    assert err.startswith("jfx: error: --param jfx_metadata_url: the metadata database (SQLite)")
    assert "cannot reach it" in err
    err = refused("--param", "jfx_pipeline_root=/home/me/artifacts", lines=4)
    assert err.startswith("jfx: error: --param jfx_pipeline_root: the pipeline root (on no volume mounted")
    assert kfp_server.requests == []  # refused before the server is asked anything
    # on the mounted volume or on a store: fine
    assert jfx_main([*args, "--param", "new_data=/mnt/jfx/new", "--param", "jfx_pipeline_root=s3://b/jfx"]) == 0
    # a spec compiled for kfp.local is not for a cluster
    local = KubeflowDagRunner(IMAGE, pipeline_root=str(tmp_path / "root"), metadata_url=DB, local=True)
    local_package = local.compile(Pipeline("eg", components=[eg]), tmp_path / "local.yaml")
    assert jfx_main(["submit", local_package, "--host", kfp_server.url]) == 1
    assert "compiled with --local, for kfp.local on this machine" in capsys.readouterr().err


PIPELINE_FILE = '''
import jfx_testlib as lib
from jfx import Pipeline, RuntimeParameter

nums = lib.make_numbers(rows=RuntimeParameter("rows", int, default=3))
pipeline = Pipeline("cli_kfp", components=[nums, lib.total(numbers=nums.outputs["numbers"])])
'''


def test_cli_compile_then_submit(kfp_server, tmp_path, capsys):
    from kfp import components

    source = tmp_path / "pipe.py"
    source.write_text(PIPELINE_FILE)
    out = tmp_path / "pipeline.yaml"
    args = ["compile", str(source), "--target", "kubeflow", "--image", IMAGE, "-o", str(out),
            "--metadata-url", DB, "--pipeline-root", ROOT, "--volume", "/mnt/jfx=jfx-pvc"]
    assert jfx_main(args) == 0
    assert f"compiled pipeline cli_kfp (2 nodes) for Kubeflow Pipelines: {out}" in capsys.readouterr().out
    components.load_component_from_file(str(out))
    assert jfx_main(["submit", str(out), "--host", kfp_server.url, "--experiment", "cli", "--param", "rows=9",
                     "--from", "total", "--from-run", "cli_kfp-earlier", "--no-cache"]) == 0
    printed = capsys.readouterr().out
    assert "submitted run run-123" in printed and f"{kfp_server.url}/#/runs/details/run-123" in printed
    assert "jfx run: cli_kfp-kfp-run-123" in printed
    [(_, _, _, body)] = kfp_server.posts("/apis/v2beta1/runs")
    assert body["runtime_config"]["parameters"] == {"rows": 9, "jfx_enable_cache": False, "jfx_from_nodes": ["total"],
                                                    "jfx_from_run": "cli_kfp-earlier"}
    assert jfx_main(["submit", str(out), "--host", kfp_server.url, "--from-run", "cli_kfp-earlier"]) == 1
    assert "--from-run needs --from or --to" in capsys.readouterr().err
    # a local store is refused for a cluster, with the way out
    assert jfx_main(["compile", str(source), "--image", IMAGE, "-o", str(out), "--pipeline-root", ROOT,
                     "--volume", "/mnt/jfx=jfx-pvc", "--metadata-url", "sqlite:////tmp/x.sqlite"]) == 1
    assert "cannot reach it" in capsys.readouterr().err
    assert jfx_main(["compile", str(source), "-o", str(out)]) == 1
    assert "needs --image IMAGE" in capsys.readouterr().err
