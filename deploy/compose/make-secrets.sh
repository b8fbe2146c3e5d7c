#!/bin/sh
# Makes what compose.yaml needs and no one should type: .env with random secrets, and tls/ with a
# self-signed certificate for auth.localhost and mcp.localhost. Run once; it never overwrites.
set -eu
cd "$(dirname "$0")"
if [ ! -f .env ]; then
  umask 077
  password="$(openssl rand -hex 24)"
  {
    echo "POSTGRES_PASSWORD=$password"
    echo "GATEHOUSE_DATABASE_URL=postgres://gatehouse:$password@postgres:5432/gatehouse"
    echo "GATEHOUSE_STORAGE_ENCRYPTION_KEY=$(openssl rand -base64 32)"
    echo "GATEHOUSE_GATEWAY_SECRET=$(openssl rand -base64 32)"
    echo "GATEHOUSE_MCP_SERVER_SECRET=$(openssl rand -base64 32)"
    echo "GATEHOUSE_ADMIN_SECRET=$(openssl rand -base64 32)"
  } > .env
  echo "wrote .env (keep it: the encryption key seals the keys in the database)"
fi
if [ ! -f tls/localhost.crt ]; then
  mkdir -p tls
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -keyout tls/localhost.key -out tls/localhost.crt -subj /CN=localhost \
    -addext "subjectAltName=DNS:auth.localhost,DNS:mcp.localhost" 2>/dev/null
  chmod 0644 tls/localhost.crt tls/localhost.key
  echo "wrote tls/localhost.crt (trust it in your browser, or NODE_EXTRA_CA_CERTS for agents on Node)"
fi
