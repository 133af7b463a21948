# The jfx image: jfx and what a task needs, the image every task of a compiled Kubeflow
# pipeline runs in (jfx compile --target kubeflow --image IMAGE).
#
#   docker build -t registry.example/jfx:0.1.0 .                                  # CPU (the runtime extra)
#   docker build -t registry.example/jfx:0.1.0-gpu --build-arg VARIANT=gpu .      # + jax[cuda12]
#   docker build -t registry.example/jfx:0.1.0-full --build-arg EXTRAS=runtime,beam,expectations,tune,examples .
#
# The base image. Pin it by digest for a release: the digest of the tag below, as the
# registry reports it, e.g.
#   docker buildx imagetools inspect python:3.11.7-slim-bookworm     (the "Digest:" line)
#   docker build --build-arg PYTHON_IMAGE=python:3.11.7-slim-bookworm@sha256:<digest> ...
# The tag is the tested environment's Python (3.11.7); docker/constraints.txt is generated from it.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
FROM ${PYTHON_IMAGE}

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
