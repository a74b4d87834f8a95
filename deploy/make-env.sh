#!/usr/bin/env bash
# Prints a complete env file for deploy/compose.yaml: the image, the PostgreSQL superuser's
# password, and the output of `dondoc keygen` (signing keys, trusted keys, JWT secret, role
# passwords). Nothing is written to disk here:
#
#   (umask 077; deploy/make-env.sh > deploy/.env)
#
# DONDOC_BIN picks the dondoc binary: by default the built image
# (`docker run --rm dondoc:local`); `DONDOC_BIN=target/release/dondoc` uses a local build.
set -euo pipefail

image=${DONDOC_IMAGE:-dondoc:local}
read -r -a dondoc <<<"${DONDOC_BIN:-docker run --rm $image}"

# Alphanumeric: passwords go inside postgres:// URLs, where + / = would need escaping.
secret() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1"; }

generated=$("${dondoc[@]}" keygen)
for name in DONDOC_GATEWAY_ASSERTION_KEY DONDOC_DIRECTIVES_ASSERTION_KEY \
  DONDOC_ASSIGNMENTS_ASSERTION_KEY DONDOC_NOTIFICATIONS_ASSERTION_KEY DONDOC_TRUSTED_KEYS; do
  if ! grep -q "^$name=" <<<"$generated"; then
    echo "make-env.sh: '${dondoc[*]} keygen' printed no $name" >&2
    exit 1
  fi
done

echo "# dondoc secrets for deploy/compose.yaml, made by deploy/make-env.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)."
echo "# Keep this file private (mode 0600); never commit it."
echo "DONDOC_IMAGE=$image"
echo "POSTGRES_PASSWORD=$(secret 32)"
echo "$generated"
# Anything an older keygen did not print.
for name in DONDOC_JWT_HS256_SECRET DONDOC_DIRECTIVES_DB_PASSWORD \
  DONDOC_ASSIGNMENTS_DB_PASSWORD DONDOC_NOTIFICATIONS_DB_PASSWORD; do
  grep -q "^$name=" <<<"$generated" || echo "$name=$(secret 32)"
done
