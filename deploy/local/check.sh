#!/usr/bin/env bash
# Checks that the local stack (make up) works end to end, as the README says:
# discovery through Consul DNS finds France, the countries are in the
# in-memory index, the README's track file makes
# its events (answered and in the events topic), both instances are passing in
# Consul and ship their logs to Kafka, StatsD counters land in carbon's
# whisper files, and graphite-web renders them (the Search request rate as
# JSON and PNG, and every graph of the service's dashboard). Exits non-zero
# naming the first thing that is wrong.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$ROOT/bin"
STATE="${STACK_DIR:-$ROOT/.stack}"
source "$STATE/ports.env"
export CONSUL_DNS_ADDR="127.0.0.1:8600" CONSUL_HTTP_ADDR="127.0.0.1:8500" KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"

fail() {
	echo "check: $*" >&2
	exit 1
}

out=$("$BIN/search-client" search --lat 48.85 --lng 2.35) || fail "search through Consul DNS failed"
grep -q France <<<"$out" || fail "Paris is not in France: $out"
echo "ok: search through Consul DNS finds France"

out=$("$BIN/search-client" search --lat 48.85 --lng 2.35 --collection countries) || fail "scoped search failed"
grep -q ' countries  *France ' <<<"$out" || fail "Paris is not in France of collection countries: $out"
out=$("$BIN/search-client" collections) || fail "collections failed"
grep -q '^countries  *241 ' <<<"$out" || fail "collection countries does not hold the 241 sample countries: $out"
echo "ok: the sample is collection countries (241 things), and a scoped search finds France"

page1=$("$BIN/search-client" search --query an --page-size 5) || fail "name search failed"
token=$(sed -n 's/^next page: --page-token //p' <<<"$page1")
[[ -n $token ]] || fail "a name search for 'an' did not page: $page1"
page2=$("$BIN/search-client" search --query an --page-size 5 --page-token "$token") || fail "second page failed"
[[ $(grep -c . <<<"$page1") -ge 6 && "$page1" != "$page2" ]] || fail "paging returned the same page twice"
echo "ok: a name search pages"

things=$("$BIN/search-client" monitor | awk '$1 == "things:" { print $2 }') || fail "monitor failed"
[[ ${things:-0} -ge 241 ]] || fail "monitor reports ${things:-no} things, want at least the 241 sample countries"
echo "ok: monitor answers ($things things)"

for _ in $(seq 1 100); do # an index is read within a poll or two of the import
	memory=$("$BIN/search-client" monitor | grep '^memory: *countries ' || true)
	grep -q ' in memory: 241 things' <<<"$memory" && break
	sleep 0.2
done
grep -q ' in memory: 241 things' <<<"$memory" || fail "monitor does not show the countries in memory: ${memory:-no memory line}"
echo "ok: the countries are in the in-memory index (MEMINDEX=on)"

# The README's track file, under a device name of this run's (a device's
# positions are applied once: a second run of the same file is stale).
dev="check-$(date +%s)-$$"
out=$(sed "s/^truck-1,/$dev,/" "$ROOT/testdata/track.csv" | "$BIN/search-client" track --collection countries -) ||
	fail "search-client track failed: $out"
summary() { python3 -c 'import json, sys
print(", ".join("%s %s %d" % (e["type"], e["key"], e["seq"]) for e in map(json.loads, sys.stdin) if e["device"] == sys.argv[1]))' "$1"; }
want="enter France 1, exit France 2, enter Belgium 3"
got=$(summary "$dev" <<<"$out")
[[ $got == "$want" ]] || fail "track of testdata/track.csv: $got, want $want"
for _ in $(seq 1 100); do # the relay publishes within a poll or two
	got=$("$BIN/search-client" events | summary "$dev") || fail "search-client events failed"
	[[ $got == "$want" ]] && break
	sleep 0.2
done
[[ $got == "$want" ]] || fail "the events topic holds $got for $dev, want $want"
grep -q '^geofence: ' <<<"$("$BIN/search-client" monitor)" || fail "monitor shows no geofence line"
echo "ok: testdata/track.csv makes enter France, exit France, enter Belgium, answered by Track and in the events topic"

passing=$("$BIN/search-client" instances | grep -c ' passing ' || true)
[[ $passing -eq 2 ]] || fail "$passing instances passing in Consul, want 2"
echo "ok: 2 instances passing in Consul"

# get URL: the body of a successful GET (captured whole: grep -q on a pipe
# would cut curl off mid-answer, which pipefail reports).
get() { curl -fsS "$1"; }
for port in "$HTTP1_PORT" "$HTTP2_PORT"; do
	body=$(get "http://127.0.0.1:$port/") || fail "no OGC API landing page on :$port"
	grep -q '"rel":"service-desc"' <<<"$body" || fail "the landing page on :$port lacks its service-desc link: $body"
	body=$(get "http://127.0.0.1:$port/locate?lat=48.85&lng=2.35") || fail "GET /locate on :$port failed"
	grep -q '"name":"France"' <<<"$body" || fail "GET /locate on :$port does not find France: $body"
done
body=$(get "http://127.0.0.1:$HTTP1_PORT/collections/countries/items?bbox=2,48,3,49") || fail "the OGC items of bbox=2,48,3,49 failed"
grep -q '"France"' <<<"$body" || fail "the OGC items of bbox=2,48,3,49 lack France"
body=$(get "http://127.0.0.1:$HTTP1_PORT/map") || fail "no map page"
grep -q leaflet.js <<<"$body" || fail "the map page does not load Leaflet"
echo "ok: the HTTP API answers on both instances (landing page, locate, items, map)"
http_passing=0
for _ in $(seq 1 100); do # the HTTP check runs every CONSUL_CHECK_INTERVAL (5 s)
	body=$(get "http://$CONSUL_HTTP_ADDR/v1/health/checks/search-service-http") || fail "Consul's health API failed"
	http_passing=$(grep -oE '"Status": *"passing"' <<<"$body" | wc -l || true)
	[[ $http_passing -eq 2 ]] && break
	sleep 0.2
done
[[ $http_passing -eq 2 ]] || fail "$http_passing search-service-http instances passing in Consul, want 2"
echo "ok: 2 search-service-http instances passing in Consul (HTTP check on /readyz)"

ids=$("$BIN/search-client" instances | awk 'NR > 1 { print $3 }')
logs=$("$BIN/search-client" logs --since 30m)
for id in $ids; do
	grep -q " $id " <<<"$logs" || fail "no log records of instance $id in Kafka"
done
echo "ok: both instances' logs are in Kafka"

for _ in 1 2 3 4 5; do "$BIN/search-client" search --query fran >/dev/null; done
# One refused call, so that the dashboard's error graph has something.
if "$BIN/search-client" search --query fran --page-token not-a-token >/dev/null 2>&1; then
	fail "a search with a made-up page token succeeded"
fi
wsp="$STATE/carbon/whisper/stats_counts/search-service/grpc/SearchService/Search/requests.wsp"
for _ in $(seq 1 150); do # StatsD flushes every 10 s
	if [[ -f "$wsp" ]] && whisper-fetch --from=$(($(date +%s) - 300)) "$wsp" | awk '$2 != "None" && $2 > 0' | grep -q .; then
		found=1
		break
	fi
	sleep 0.2
done
[[ ${found:-} ]] || fail "no Search request counts in $wsp"
echo "ok: stats_counts.search-service.grpc.SearchService.Search.requests is in carbon's whisper data"

python3 "$ROOT/deploy/local/check-graphite.py" "http://127.0.0.1:$GRAPHITE_PORT" "$ROOT/deploy/graphite/dashboard.json"
