#!/usr/bin/env python3
"""Checks graphite-web of a running stack, as a person would look at it.

    check-graphite.py GRAPHITE_URL dashboard.json

- the Search request rate renders through the render API: with
  format=json it has non-null, positive points in the last ten minutes, and
  with format=png it is a PNG that differs from the "no data" picture of a
  metric that does not exist;
- the dashboard is stored in graphite-web, its page opens with it and with
  no error, and every one of its graphs renders with data.

StatsD flushes every few seconds, so it asks again (at most 120 times, half a
second apart) until the data is there; it counts, it does not time.
Exits non-zero naming the first thing that is wrong.
"""

import json
import re
import sys
import time
import urllib.parse
import urllib.request

SEARCH_RATE = "stats.search-service.grpc.SearchService.Search.requests"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def get(base, path, **params):
    url = f"{base}{path}?" + urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(url, timeout=20) as resp:
        return resp.headers.get("Content-Type", ""), resp.read()


def points(base, target):
    _, body = get(base, "/render", target=target, format="json", **{"from": "-10min"})
    return [v for series in json.loads(body) for v, _ in series["datapoints"] if v is not None]


def eventually(what, ok):
    for _ in range(120):
        if ok():
            return
        time.sleep(0.5)
    sys.exit(f"check: {what}")


def main(base, dashboard_path):
    base = base.rstrip("/")
    eventually(f"no Search request rate in graphite-web ({SEARCH_RATE})",
               lambda: any(v > 0 for v in points(base, SEARCH_RATE)))
    print(f"ok: graphite-web renders the Search request rate as JSON with data ({SEARCH_RATE})")

    ctype, png = get(base, "/render", target=SEARCH_RATE, format="png", width=600, height=300, **{"from": "-10min"})
    _, empty = get(base, "/render", target="stats.no.such.metric", format="png", width=600, height=300, **{"from": "-10min"})
    if ctype != "image/png" or not png.startswith(PNG_MAGIC):
        sys.exit(f"check: the Search request rate graph is not a PNG ({ctype}, {png[:16]!r})")
    if png == empty:
        sys.exit("check: the Search request rate graph is the same picture as a graph of no data")
    print(f"ok: graphite-web renders the Search request rate as a PNG with data ({len(png)} bytes)")

    with open(dashboard_path, encoding="utf-8") as f:
        want = json.load(f)
    _, body = get(base, f"/dashboard/load/{want['name']}")
    stored = json.loads(body).get("state", {})
    if len(stored.get("graphs", [])) != len(want["graphs"]):
        sys.exit(f"check: graphite-web has no dashboard {want['name']} with {len(want['graphs'])} graphs")
    _, page = get(base, f"/dashboard/{want['name']}")
    page = page.decode()
    if "var initialState = JSON.parse(" not in page or "var initialError = null;" not in page:
        error = re.search(r"var initialError = '([^']*)'", page)
        sys.exit(f"check: the dashboard page does not open cleanly: {error.group(1) if error else 'no initial state'}")
    for graph in want["graphs"]:
        title, targets = graph[1]["title"], graph[1]["target"]
        eventually(f"dashboard graph {title!r} has no data: {targets}",
                   lambda: any(points(base, t) for t in targets))
    print(f"ok: the {want['name']} dashboard's {len(want['graphs'])} graphs all have data "
          f"({base}/dashboard/{want['name']})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
