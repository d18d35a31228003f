#!/usr/bin/env python3
"""Saves the service's dashboard (dashboard.json) into graphite-web.

    save-dashboard.py GRAPHITE_URL dashboard.json   save it, read it back
    save-dashboard.py --targets dashboard.json      print each graph's targets,
                                                    one line per graph, tab-separated

Both stacks use it: the native one (deploy/local/stack.sh) and the
graphite-dashboard job of docker-compose.yml (in the graphite-statsd image's
Python). graphite-web keeps dashboards in its database; POST
/dashboard/save/NAME with the dashboard's state stores it, and
/dashboard/NAME shows it. Only the standard library: it runs in both places.
"""

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def load(path):
    with open(path, encoding="utf-8") as f:
        state = json.load(f)
    # Each graph is [target query string, params, render URL] as the
    # dashboard's own JavaScript saves it; the first and last are derived
    # from the params here so that dashboard.json holds each target once.
    for graph in state["graphs"]:
        params = graph[1]
        graph[0] = urllib.parse.urlencode([("target", t) for t in params["target"]])
        query = dict(state["defaultGraphParams"])
        query.update({k: v for k, v in params.items() if k != "target"})
        graph[2] = "/render?" + urllib.parse.urlencode(list(query.items()) + [("target", t) for t in params["target"]])
    return state


def request(url, data=None):
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    with urllib.request.urlopen(url, data=body, timeout=10) as resp:
        return json.load(resp)


def save(base, state, wait_seconds=60):
    name = state["name"]
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            answer = request(f"{base}/dashboard/save/{name}", {"state": json.dumps(state)})
            break
        except (urllib.error.URLError, ConnectionError) as err:
            if time.monotonic() > deadline:
                sys.exit(f"graphite-web at {base} did not answer within {wait_seconds}s: {err}")
            time.sleep(1)
    if answer.get("error"):
        sys.exit(f"graphite-web refused the dashboard: {answer['error']}")
    stored = request(f"{base}/dashboard/load/{name}")
    if len(stored.get("state", {}).get("graphs", [])) != len(state["graphs"]):
        sys.exit(f"graphite-web did not store the dashboard's {len(state['graphs'])} graphs: {stored}")
    print(f"graphite dashboard saved: {base}/dashboard/{name} ({len(state['graphs'])} graphs)")


def main(argv):
    if len(argv) == 3 and argv[1] == "--targets":
        for graph in load(argv[2])["graphs"]:
            print("\t".join(graph[1]["target"]))
        return
    if len(argv) != 3:
        sys.exit(__doc__)
    save(argv[1].rstrip("/"), load(argv[2]))


if __name__ == "__main__":
    main(sys.argv)
