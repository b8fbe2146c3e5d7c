#!/bin/sh
# A local certificate authority and certificates for auth.gatehouse.local and mcp.gatehouse.local
# (docs/librechat.md), where deploy/nginx/gatehouse.conf looks for them once the names are swapped:
#   sh deploy/librechat/make-certs.sh [DIR]        (DIR: /etc/gatehouse/tls)
# Give ca.crt to LibreChat's container (NODE_EXTRA_CA_CERTS) and to the browser.
set -eu
dir=${1:-/etc/gatehouse/tls}
mkdir -p "$dir"
cd "$dir"
if [ ! -f ca.key ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 825 \
    -subj "/CN=Gatehouse local CA" 2>/dev/null
fi
for name in auth.gatehouse.local mcp.gatehouse.local; do
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "/CN=$name" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$name" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
done
chmod 600 ./*.key
echo "certificates in $dir; trust $dir/ca.crt"
