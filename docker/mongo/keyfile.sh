#!/bin/sh
# One-shot job of the Compose stack: the replica set's keyfile (internal authentication between
# the three members) from MONGO_REPLICA_SET_KEY, into the volume every member mounts read-only.
# mongod refuses a keyfile others can read, and runs as uid 999 in the mongo image.
set -eu
: "${MONGO_REPLICA_SET_KEY:?set MONGO_REPLICA_SET_KEY in the env file}"
printf '%s\n' "$MONGO_REPLICA_SET_KEY" > /keyfile/keyfile
chown 999:999 /keyfile/keyfile
chmod 400 /keyfile/keyfile
