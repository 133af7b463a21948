# The jfx image: jfx and what a task needs, the image every task of a compiled Kubeflow
# pipeline runs in (jfx compile --target kubeflow --image IMAGE).
#
#   docker build -t registry.example/jfx:0.1.0 --build-arg PYTHON_DIGEST=sha256:<digest> .    # CPU (runtime extra)
#   docker build ... --build-arg VARIANT=gpu .                                      # + jax[cuda12]
#   docker build ... --build-arg EXTRAS=runtime,beam,expectations,tune,examples .
#
# The base image, pinned by digest: the build refuses to go on without PYTHON_DIGEST, the
# digest of the tag below as the registry reports it (the "Digest:" line of
#   docker buildx imagetools inspect python:3.11.7-slim-bookworm
# run where the registry is reachable), unless --build-arg ALLOW_UNPINNED_BASE=1 says that
# the tag alone is wanted (a trial build).
# The tag is the tested environment's Python (3.11.7); docker/constraints.txt is generated from it.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
ARG PYTHON_DIGEST
FROM ${PYTHON_IMAGE}${PYTHON_DIGEST:+@}${PYTHON_DIGEST}
ARG PYTHON_IMAGE
ARG PYTHON_DIGEST
ARG ALLOW_UNPINNED_BASE=0
RUN set -eu; \
    if [ -z "${PYTHON_DIGEST}" ]; then \
      if [ "${ALLOW_UNPINNED_BASE}" != "1" ]; then \
        echo "jfx image: the base image ${PYTHON_IMAGE} is not pinned: build with --build-arg PYTHON_DIGEST=sha256:<digest> (the Digest: line of 'docker buildx imagetools inspect ${PYTHON_IMAGE}'), or --build-arg ALLOW_UNPINNED_BASE=1 for a build from the tag alone" >&2; \
        exit 2; \
      fi; \
      echo "jfx image: warning: the base image ${PYTHON_IMAGE} is not pinned by digest (ALLOW_UNPINNED_BASE=1)" >&2; \
    elif ! printf '%s\n' "${PYTHON_DIGEST}" | grep -Eq '^sha256:[0-9a-f]{64}$'; then \
      echo "jfx image: PYTHON_DIGEST=${PYTHON_DIGEST}: expected sha256: and 64 hex digits" >&2; \
      exit 2; \
    fi

# runtime: kfp (its executor runs each task), PostgreSQL and MySQL drivers, S3. Add gcs for
# gs:// roots, beam, expectations, tune or examples for the components that use them.
ARG EXTRAS=runtime
# cpu, or gpu: JAX with CUDA 12 (jax[cuda12], the version docker/constraints.txt pins)
ARG VARIANT=cpu

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    JFX_HOME=/var/lib/jfx \
    JFX_CACHE_DIR=/var/lib/jfx/cache \
    HOME=/home/jfx

# The repository root is the package `jfx`; install it (not editable) with the extras, every
# version from the constraints of the tested environment.
COPY docker/constraints.txt /tmp/constraints.txt
COPY . /tmp/jfx-src
RUN set -eux; \
    case "${VARIANT}" in \
      cpu) extras="${EXTRAS}" ;; \
      gpu) extras="${EXTRAS},gpu" ;; \
      *) echo "VARIANT=${VARIANT}: expected cpu or gpu" >&2; exit 2 ;; \
    esac; \
    python -m pip install --constraint /tmp/constraints.txt "/tmp/jfx-src[${extras}]"; \
    rm -rf /tmp/jfx-src /tmp/constraints.txt; \
    python -c "import jfx, kfp; from jfx.orchestrators import entrypoint; print('jfx', jfx.__version__, 'kfp', kfp.__version__)"

# A non-root user (KFP drops all capabilities; clusters may enforce runAsNonRoot) whose
# JFX_HOME and HOME are writable. Numeric, so runAsNonRoot can verify it.
RUN set -eux; \
    groupadd --gid 10001 jfx; \
    useradd --uid 10001 --gid 10001 --home-dir /home/jfx --create-home --shell /usr/sbin/nologin jfx; \
    mkdir -p "${JFX_HOME}" "${JFX_CACHE_DIR}" /app; \
    chown -R 10001:10001 "${JFX_HOME}" /app; \
    chmod -R g+rwX "${JFX_HOME}" /app
USER 10001:10001

WORKDIR /app
ENTRYPOINT ["python", "-m", "jfx.orchestrators.entrypoint"]
CMD ["--help"]
