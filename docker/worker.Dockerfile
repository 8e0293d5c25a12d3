# syntax=docker/dockerfile:1
# The Prefect worker (process work pool) that runs the Lifecycle flows; the Compose stack also runs
# the Prefect server from this image, so client and server are the same Prefect version.
# Build context is the repo root:  docker build -f docker/worker.Dockerfile -t lifecycle-worker .

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
    MLOPS_HOME=/var/lib/lifecycle \
    MLOPS_REPORTS_DIR=/srv/reports \
    PREFECT_HOME=/var/lib/lifecycle/prefect
# A fixed numeric uid so Kubernetes' runAsNonRoot can verify it. MLOPS_HOME and the reports folder
# are volumes owned by that user (nginx serves the reports volume read-only).
RUN groupadd --system --gid 10001 lifecycle \
    && useradd --system --uid 10001 --gid lifecycle --home-dir /var/lib/lifecycle --no-create-home lifecycle \
    && install -d -o lifecycle -g lifecycle /var/lib/lifecycle /srv/reports /app
COPY --from=builder /opt/venv /opt/venv
# `prefect deploy` resolves entrypoints (flows/...) from the current directory: the repo layout.
WORKDIR /app
COPY flows/ flows/
COPY deployments/ deployments/
COPY docker/prefect-worker.sh /usr/local/bin/prefect-worker.sh
USER 10001:10001
EXPOSE 8080
VOLUME ["/var/lib/lifecycle", "/srv/reports"]
# The worker's own health server (`--with-healthcheck`): fails when it stops polling its pool.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
CMD ["sh", "/usr/local/bin/prefect-worker.sh"]
