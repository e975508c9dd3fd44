#!/bin/sh
# Make a development CA and a certificate for localhost signed by it, once, in compose/certs/
# (never committed). The front reads certs/front.pem (certificate, CA, key). Trust certs/ca.crt
# in a browser or system store to open https://localhost:8443 without warnings (README).
set -eu
DIR=${1:-$(dirname "$0")/certs}
mkdir -p "$DIR"
cd "$DIR"
# front.pem (it holds the key) is mode 0640: the front runs as user haproxy with the file's group
# added (compose group_add, FRONT_CERT_GID), not as root
if [ -s front.pem ] && [ -s ca.crt ]; then chmod 640 front.pem; exit 0; fi
umask 077
openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 825 \
  -subj "/CN=txzserver development CA ($(hostname))" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -new -nodes -newkey rsa:2048 -sha256 -subj "/CN=localhost" \
  -keyout localhost.key -out localhost.csr 2>/dev/null
cat > localhost.ext <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
EXT
openssl x509 -req -in localhost.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -sha256 \
  -extfile localhost.ext -out localhost.crt 2>/dev/null
cat localhost.crt ca.crt localhost.key > front.pem
rm -f localhost.csr localhost.ext ca.srl
chmod 644 ca.crt localhost.crt
chmod 640 front.pem
echo "made a development CA and a localhost certificate in $DIR (trust $DIR/ca.crt)"
