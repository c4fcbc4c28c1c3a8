# syntax=docker/dockerfile:1
# Parley in a container: a build stage that installs the package into a virtualenv, and a slim
# runtime stage (non-root) with the Debian tools for OCR and speech.
#   docker build -t parley .
#   docker run -p 8080:8080 -e PARLEY_MODEL=... -e OPENAI_API_KEY=... -e DATABASE_URL=... parley
# The same image runs every process: `parley serve` (default), `parley discord`, `parley slack`,
# `parley db migrate` (Fly's release command).

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The CPU build of torch first, so sentence-transformers does not pull the CUDA one (GBs).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY core ./core
COPY adapters ./adapters
COPY evals ./evals
# The encoder's ONNX graph is exported here, once, with torch: a container then starts without
# importing torch or sentence-transformers (seconds and hundreds of MB on every start).
ENV XDG_CACHE_HOME=/opt/cache
RUN pip install . \
    && cd / && python -c "from core.embeddings import bundled_model_path as m; from core.encoder import ensure_graph, graph_cache_dir as c; print(ensure_graph(m(), c()))" \
    && find /opt/venv -name "__pycache__" -type d -prune -exec rm -rf {} +

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng espeak-ng ffmpeg \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin parley \
    && mkdir -p /data && chown parley:parley /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=parley:parley /opt/cache /opt/cache
# The goldens `parley eval` reads (PARLEY_DATASETS_DIR below): the installed package holds code only.
COPY datasets /opt/parley/datasets
ENV PATH=/opt/venv/bin:$PATH \
    XDG_CACHE_HOME=/opt/cache \
    PYTHONUNBUFFERED=1 \
    PARLEY_HOST=0.0.0.0 \
    PORT=8080 \
    PARLEY_LOG_JSON=true \
    PARLEY_DATA_DIR=/data \
    PARLEY_DATASETS_DIR=/opt/parley/datasets \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    NEMO_GUARDRAILS_NO_USAGE_STATS=1 \
    DEEPEVAL_TELEMETRY_OPT_OUT=YES \
    DEEPEVAL_DISABLE_DOTENV=1
USER parley
WORKDIR /home/parley
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=4)"]
CMD ["parley", "serve"]
