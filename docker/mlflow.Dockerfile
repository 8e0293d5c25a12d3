# syntax=docker/dockerfile:1
# The MLflow tracking server + model registry: PostgreSQL backend store, artifacts proxied to S3
# (`--serve-artifacts`), so clients need no S3 credentials of their own.
# Build context is the repo root:  docker build -f docker/mlflow.Dockerfile -t lifecycle-mlflow .

# ---- builder: mlflow with the PostgreSQL driver and boto3, nothing of the project ----
FROM python:3.11.14-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
COPY docker/constraints.txt /tmp/constraints.txt
# Same mlflow as the clients (pyproject.toml); the constraints pin its transitive dependencies.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --constraint /tmp/constraints.txt \
        mlflow==3.17.2 psycopg2-binary==2.9.13 boto3==1.43.117

# ---- runtime ----
FROM python:3.11.14-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid mlflow --home-dir /var/lib/mlflow --no-create-home mlflow \
    && install -d -o mlflow -g mlflow /var/lib/mlflow
COPY --from=builder /opt/venv /opt/venv
WORKDIR /var/lib/mlflow
USER 10001:10001
EXPOSE 5000
# /health is exempt from MLflow's Host-header check, so it answers whatever --allowed-hosts says.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"]
# The backend store and artifact destination come from MLFLOW_BACKEND_STORE_URI and
# MLFLOW_ARTIFACTS_DESTINATION (read by `mlflow server`), so no password lands in the command line.
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", "--serve-artifacts"]
