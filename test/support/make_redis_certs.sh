#!/bin/sh
# Throwaway certificates for the Redis TLS tests, written to DIR (EC P-256,
# with the `openssl` command: $OPENSSL, else from PATH):
#   ca.pem                 the CA the clients trust (and Redis, for client certificates)
#   server.pem/.key        signed by it, for localhost and 127.0.0.1
#   wrong-host.pem/.key    signed by it, for redis.test only
#   expired.pem/.key       signed by it, for localhost and 127.0.0.1, expired yesterday
#   untrusted.pem/.key     signed by another CA, for localhost and 127.0.0.1
#   client.pem/.key        a client certificate signed by ca.pem
# usage: make_redis_certs.sh DIR
set -eu
dir=$1
openssl=${OPENSSL:-openssl}
mkdir -p "$dir"
cd "$dir"
key() { "$openssl" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {
  key "$1.key"
  "$openssl" req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=mesa test $1" 2>/dev/null
}
# signed NAME CA DAYS SAN USAGE
signed() {
  key "$1.key"
  "$openssl" req -new -key "$1.key" -out "$1.csr" -subj "/CN=mesa test $1" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$4" "$5" > "$1.ext"
  "$openssl" x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days "$3" \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca ca
ca other-ca
signed server ca 2 'DNS:localhost,IP:127.0.0.1' serverAuth
signed wrong-host ca 2 'DNS:redis.test' serverAuth
signed expired ca -1 'DNS:localhost,IP:127.0.0.1' serverAuth
signed untrusted other-ca 2 'DNS:localhost,IP:127.0.0.1' serverAuth
signed client ca 2 'DNS:mesa-client' clientAuth
