# syntax=docker/dockerfile:1
# The Lifecycle API: FastAPI + uvicorn serving the registry alias (`mlops serve`).
# Build context is the repo root:  docker build -f docker/api.Dockerfile -t lifecycle-api .

# ---- builder: a virtual environment holding the project and its pinned dependencies ----
FROM python:3.11.14-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
# Dependencies before the code, so editing the code does not reinstall 2 GB of wheels.
COPY pyproject.toml README.md ./
COPY docker/constraints.txt /tmp/constraints.txt
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --constraint /tmp/constraints.txt --requirement /tmp/requirements.txt
COPY lifecycle/ lifecycle/
COPY ops/ ops/
COPY flows/ flows/
COPY serving/ serving/
COPY monitoring/ monitoring/
COPY reporting/ reporting/
RUN /opt/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps /wheels/*.whl

# ---- runtime: the same slim base, the venv, and an unprivileged user ----
FROM python:3.11.14-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MLOPS_HOME=/var/lib/lifecycle
# A fixed numeric uid so Kubernetes' runAsNonRoot can verify it; MLOPS_HOME holds the journal of
# predictions that have not reached MongoDB yet, so it is a volume owned by that user.
RUN groupadd --system --gid 10001 lifecycle \
    && useradd --system --uid 10001 --gid lifecycle --home-dir /var/lib/lifecycle --no-create-home lifecycle \
    && install -d -o lifecycle -g lifecycle /var/lib/lifecycle
COPY --from=builder /opt/venv /opt/venv
WORKDIR /var/lib/lifecycle
USER 10001:10001
EXPOSE 8000
VOLUME ["/var/lib/lifecycle"]
# /health is liveness (the process answers); /ready would fail until a champion exists, and an
# API waiting for its first model must not be restarted in a loop.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["mlops", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
