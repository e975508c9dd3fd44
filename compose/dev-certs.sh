#!/bin/sh
# Make a development CA and a certificate for the front signed by it, in compose/certs/ (never
# committed) or the directory given as $1. The front reads front.pem (certificate, CA, key).
# Trust ca.crt in a browser or system store to open https://localhost:8443 without warnings
# (docs/operators/compose.md, "Trusting the development CA").
#
# SERVER_NAMES (default "localhost 127.0.0.1 ::1"; the front answers these names only) are the
# certificate's names. The CA can sign for nothing else: its nameConstraints permit exactly those
# names (with their subdomains, RFC 5280 4.2.1.10) and addresses, and its key is deleted once
# the certificate is signed. Both are valid DAYS days; they are made again when they expire
# within a week, when SERVER_NAMES changes, or when an older CA (no constraints, key kept) is
# found: trust the new ca.crt then.
set -eu
DIR=${1:-$(dirname "$0")/certs}
SERVER_NAMES=${SERVER_NAMES:-localhost 127.0.0.1 ::1}
DAYS=${DAYS:-90}
mkdir -p "$DIR"
cd "$DIR"
# one run at a time: two stacks started at the same moment (make test's smoke phases) would each
# make a CA and a certificate, one overwriting the other's files; the second finds the first's
# (the lock is on the directory itself: no file is left beside the certificates)
exec 9<.
flock 9

# names: DNS entries for host names, IP entries for addresses (v4 and v6)
SAN="" PERMITTED=""
for name in $SERVER_NAMES; do
  case $name in
    *:*) SAN="$SAN,IP:$name"; PERMITTED="$PERMITTED,permitted;IP:$name/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" ;;
    *[!0-9.]*) SAN="$SAN,DNS:$name"; PERMITTED="$PERMITTED,permitted;DNS:$name" ;;
    *) SAN="$SAN,IP:$name"; PERMITTED="$PERMITTED,permitted;IP:$name/255.255.255.255" ;;
  esac
done
SAN=${SAN#,} PERMITTED=${PERMITTED#,}

# front.pem (it holds the key) is mode 0640: the front runs as user haproxy with the file's group
# added (compose group_add, FRONT_CERT_GID), not as root
if [ -s front.pem ] && [ -s ca.crt ] && [ ! -e ca.key ] && [ "$(cat names 2>/dev/null)" = "$SERVER_NAMES" ] \
   && openssl x509 -checkend 604800 -noout -in ca.crt >/dev/null \
   && openssl x509 -noout -ext nameConstraints -in ca.crt | grep -q Permitted; then
  chmod 640 front.pem
  exit 0
fi
umask 077
rm -f ca.key front.pem
trap 'rm -f ca.key front.key front.csr front.ext ca.srl' EXIT
openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days "$DAYS" \
  -subj "/CN=txzserver development CA ($(hostname))" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "nameConstraints=critical,$PERMITTED" \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -new -nodes -newkey rsa:2048 -sha256 -subj "/CN=${SERVER_NAMES%% *}" \
  -keyout front.key -out front.csr 2>/dev/null
cat > front.ext <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$SAN
EXT
openssl x509 -req -in front.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$DAYS" -sha256 \
  -extfile front.ext -out localhost.crt 2>/dev/null
# the CA's key signs nothing else: gone before the certificate is even used
rm -f ca.key
cat localhost.crt ca.crt front.key > front.pem
printf '%s' "$SERVER_NAMES" > names
chmod 644 ca.crt localhost.crt names
chmod 640 front.pem
echo "made a development CA (for $SERVER_NAMES only, $DAYS days, its key deleted) and a certificate in $DIR (trust $DIR/ca.crt)"
