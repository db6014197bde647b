#!/bin/sh
# One-shot seed for docker-compose.yml (runs in the curl image): creates a
# demo tenant, a sandbox app and the sandbox user alice, then prints the
# login link to open and where to see its trace. Safe to run again.
set -eu

PERCH="${PERCH_INTERNAL_URL:-http://perch:8080}"
PUBLIC="${PERCH_PUBLIC_URL:-http://localhost:8080}"
TOKEN="${PERCH_OPERATOR_TOKEN:?PERCH_OPERATOR_TOKEN is required}"
PASSWORD="correct horse battery staple"
REDIRECT="${PUBLIC}/healthz"

i=0
until curl -fsS "$PERCH/readyz" >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -gt 60 ]; then echo "perch did not become ready" >&2; exit 1; fi
  sleep 1
done

field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

# A fresh tenant per run (tenant names are unique).
tenant=$(curl -fsS -X POST "$PERCH/v1/tenants" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"name\": \"Demo $(date +%s)\"}")
key=$(printf '%s' "$tenant" | field secret)

app=$(curl -fsS -X POST "$PERCH/v1/apps" \
  -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d "{\"name\": \"Greatest Website\", \"callback_urls\": [\"$REDIRECT\"],
       \"provider\": {\"kind\": \"sandbox\"}, \"sign_in_with_twitter\": true}")
login_url=$(printf '%s' "$app" | field login_url)

# The sandbox user (409 on a second run: it exists already).
curl -sS -o /dev/null -X POST "$PERCH/sandbox/admin/users" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"screen_name\": \"alice\", \"name\": \"Alice\", \"email\": \"alice@example.com\",
       \"password\": \"$PASSWORD\"}"

cat <<BANNER

==> Perch is up. Open this demo login in your browser:

    ${login_url}?redirect_uri=$(printf '%s' "$REDIRECT" | sed 's/:/%3A/g; s#/#%2F#g')&state=demo

    sign in to the sandbox as  alice  /  ${PASSWORD}
    (you land on ${REDIRECT}?code=...: the code your site would exchange)

==> Then see the login's traces in Jaeger (service "perch"):

    http://localhost:16686/search?service=perch

==> Metrics: http://localhost:9090/metrics   API: ${PUBLIC}/openapi.json
BANNER
