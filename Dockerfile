# The jfx image: jfx and its runtime dependencies, the image every task of a compiled
# Kubeflow pipeline runs in (jfx compile --target kubeflow --image IMAGE).
#
#   docker build -t registry.example/jfx:0.1.0 .
#   docker build -t registry.example/jfx:0.1.0 --build-arg EXTRAS=kubeflow,postgres .   # a smaller image
#
# Kubeflow runs each task's own command (kfp's executor, which calls the jfx launcher for
# one node); run directly, the image runs the same entrypoint from a shell:
#
#   docker run --rm IMAGE node --ir ir.json --node Trainer --run-id RUN --metadata-url URL
#   docker run --rm --entrypoint jfx IMAGE compile /app/pipeline.py --image IMAGE -o /out/pipeline.yaml ...
#
# A pipeline's own code (components, module files) goes into an image built FROM this one,
# at the path the pipeline is compiled from (see docs/kubeflow.md).
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

# kubeflow: kfp, whose executor runs the tasks; postgres/mysql: drivers for a shared metadata
# database; beam, expectations, tune, examples: what the standard components may use.
ARG EXTRAS=kubeflow,postgres,mysql,beam,expectations,tune,examples

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    JFX_HOME=/var/lib/jfx

# The repository root is the package `jfx`; install it (not editable) with the extras.
COPY . /tmp/jfx-src
RUN python -m pip install "/tmp/jfx-src[${EXTRAS}]" \
    && rm -rf /tmp/jfx-src \
    && mkdir -p "${JFX_HOME}" /app \
    && python -c "import jfx, kfp; from jfx.orchestrators import entrypoint; print('jfx', jfx.__version__, 'kfp', kfp.__version__)"

WORKDIR /app
ENTRYPOINT ["python", "-m", "jfx.orchestrators.entrypoint"]
CMD ["--help"]
