#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume
# (/docker-entrypoint-initdb.d): one database each for MLflow and Prefect, owned by POSTGRES_USER.
# Prefect's migrations need the pg_trgm extension; creating it here does not depend on the
# owner's privileges.
set -eu

for db in mlflow prefect; do
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\";"
done
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname prefect \
    -c "CREATE EXTENSION IF NOT EXISTS pg_trgm;"
