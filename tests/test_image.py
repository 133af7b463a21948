"""The jfx image's contents without a container engine: the wheel built from the Docker build
context (the checkout as .dockerignore filters it) installs with docker/constraints.txt and the
runtime extra, and the task entrypoint runs from outside the checkout; the Dockerfile pins what
the image is made of and runs as a non-root user.

The install resolves against the tested environment instead of downloading ~150 packages: the
fresh venv sees the test suite's site-packages through a .pth line (without its editable jfx),
and pip installs the wheel with ``--no-index``, so a runtime requirement that the tested
environment lacks, or a pin that contradicts it, fails the install."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
CONSTRAINTS = CHECKOUT / "docker" / "constraints.txt"
TEST_ONLY = ("pytest", "moto", "playwright", "ruff", "mypy", "scikit-learn", "cosmic-ray")


def dockerignore_patterns() -> list[str]:
    lines = (CHECKOUT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not [p for p in patterns if p.startswith("!")], "negated patterns are not copied by this test"
    return patterns


def ignored(rel: str, patterns: list[str]) -> bool:
    """Docker's rule: a pattern matches a path from the context root (``**`` matches any depth)."""
    parts = rel.split("/")
    for pattern in patterns:
        pattern = pattern.strip("/")
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatchcase("/".join(parts[i:]), pattern[3:]) for i in range(len(parts))):
                return True
        elif fnmatch.fnmatchcase(rel, pattern):
            return True
    return False


def copy_context(target: Path) -> Path:
    patterns = dockerignore_patterns()
    for folder, dirs, files in os.walk(CHECKOUT):
        rel_folder = os.path.relpath(folder, CHECKOUT)
        rel_folder = "" if rel_folder == "." else rel_folder + "/"
        dirs[:] = [d for d in dirs if not ignored(rel_folder + d, patterns)]
        for name in files:
            if not ignored(rel_folder + name, patterns):
                (target / rel_folder).mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(folder) / name, target / rel_folder / name)
    return target


def test_the_ignore_rules_copy_the_package_and_leave_out_tests_and_caches(tmp_path):
    patterns = dockerignore_patterns()
    assert ignored("tests", patterns) and ignored(".git", patterns) and ignored(".venv", patterns)
    assert ignored("components/__pycache__", patterns) and ignored("jfx.egg-info", patterns)
    assert not ignored("components/_trainer.py", patterns) and not ignored("docker/constraints.txt", patterns)


def test_the_wheel_of_the_build_context_runs_a_task_entrypoint_outside_the_checkout(tmp_path):
    context = copy_context(tmp_path / "context")
    assert not (context / "tests").exists() and (context / "orchestrators" / "entrypoint.py").is_file()
    wheels = tmp_path / "wheels"
    # the build backend (setuptools>=77) comes from pip's cache or the index, as in `docker build`
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(context)],
                           capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = wheels.glob("jfx-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "jfx/orchestrators/entrypoint.py" in names and "jfx/examples/penguin/model.py" in names
    assert not [n for n in names if n.startswith(("jfx/tests/", "tests/"))]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the tested environment's packages, without running its .pth files (its editable jfx stays out)
    (site / "tested_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "-q",
         "--constraint", str(CONSTRAINTS), f"jfx[runtime] @ {wheel.as_uri()}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "JFX_"))}
    env["JFX_HOME"] = str(tmp_path / "jfx-home")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shown = subprocess.run([str(python), "-m", "jfx.orchestrators.entrypoint", "--help"], capture_output=True,
                           text=True, cwd=outside, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "node" in shown.stdout
    where = subprocess.run(
        [str(python), "-c", "import jfx, kfp, psycopg, pymysql, s3fs; from kfp import kubernetes; "
                            "from jfx.orchestrators import entrypoint, _kfp_cli; print(jfx.__file__)"],
        capture_output=True, text=True, cwd=outside, env=env, timeout=120)
    assert where.returncode == 0, where.stderr[-3000:]
    assert Path(where.stdout.strip()).is_relative_to(site)  # the wheel's jfx, not the checkout
    assert not Path(where.stdout.strip()).is_relative_to(CHECKOUT)


def test_the_constraints_pin_the_tested_environment_and_no_test_only_package():
    generated = subprocess.run([sys.executable, str(CHECKOUT / "docker" / "constraints.py"), "--check"],
                               capture_output=True, text=True, timeout=120)
    assert generated.returncode == 0, generated.stderr
    pins = dict(line.split("==") for line in CONSTRAINTS.read_text().splitlines() if line and line[0] != "#")
    from importlib import metadata

    for name in ("jax", "jaxlib", "kfp", "pyarrow", "sqlalchemy", "mlflow-skinny", "psycopg", "s3fs"):
        assert pins[name] == metadata.version(name), name
    assert not [p for p in pins if p in TEST_ONLY]


def test_the_dockerfile_runs_as_a_non_root_user_from_a_pinned_base_with_a_gpu_variant():
    text = (CHECKOUT / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+\.\d+)-slim", text, re.M)
    assert base and base.group(1) == ".".join(map(str, sys.version_info[:3]))  # the tested Python
    assert "--constraint /tmp/constraints.txt" in text and "COPY docker/constraints.txt" in text
    assert re.search(r"^ARG EXTRAS=runtime$", text, re.M) and re.search(r"^ARG VARIANT=cpu$", text, re.M)
    assert 'gpu) extras="${EXTRAS},gpu"' in text
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user == ["10001:10001"]
    assert text.index("USER 10001") > text.index('chown -R 10001:10001 "${JFX_HOME}"')



def dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    instructions: list[str] = []
    pending = ""
    for line in (CHECKOUT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        instructions.append((pending + line).strip())
        pending = ""
    return instructions


def shell(script: str, **build_args: str) -> subprocess.CompletedProcess[str]:
    """``script`` as a RUN (or a FROM's ${...} expansion) sees the build arguments: POSIX sh, args as env."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **build_args}
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env, timeout=60)


DIGEST = "sha256:" + "0123456789abcdef" * 4


def test_the_base_image_is_pinned_by_digest_and_the_build_refuses_to_run_without_one():
    """docker build cannot run here: the FROM line's expansion and the check's RUN are run in sh."""
    steps = dockerfile_instructions()
    froms = [s for s in steps if s.startswith("FROM ")]
    assert froms == ["FROM ${PYTHON_IMAGE}${PYTHON_DIGEST:+@}${PYTHON_DIGEST}"]
    before = steps[:steps.index(froms[0])]
    assert "ARG PYTHON_DIGEST" in before  # a build argument with no default: the digest is always chosen
    [check] = [s for s in steps if s.startswith("RUN ") and "PYTHON_DIGEST" in s]
    assert steps.index(check) < min(steps.index(s) for s in steps if "pip" in s and s.startswith("RUN "))
    image = "python:3.11.7-slim-bookworm"
    base = froms[0].removeprefix("FROM ")
    assert shell(f"printf %s {base}", PYTHON_IMAGE=image, PYTHON_DIGEST=DIGEST).stdout == f"{image}@{DIGEST}"
    assert shell(f"printf %s {base}", PYTHON_IMAGE=image, PYTHON_DIGEST="").stdout == image

    script = check.removeprefix("RUN ")
    refused = shell(script, PYTHON_IMAGE=image, PYTHON_DIGEST="", ALLOW_UNPINNED_BASE="0")
    assert refused.returncode != 0
    assert "--build-arg PYTHON_DIGEST=sha256:<digest>" in refused.stderr
    assert f"docker buildx imagetools inspect {image}" in refused.stderr and "ALLOW_UNPINNED_BASE=1" in refused.stderr
    assert shell(script, PYTHON_IMAGE=image, PYTHON_DIGEST=DIGEST, ALLOW_UNPINNED_BASE="0").returncode == 0
    allowed = shell(script, PYTHON_IMAGE=image, PYTHON_DIGEST="", ALLOW_UNPINNED_BASE="1")
    assert allowed.returncode == 0 and "not pinned by digest" in allowed.stderr
    bad = shell(script, PYTHON_IMAGE=image, PYTHON_DIGEST="latest", ALLOW_UNPINNED_BASE="0")
    assert bad.returncode != 0 and "PYTHON_DIGEST=latest: expected sha256:" in bad.stderr
