#!/usr/bin/python3
"""A Python client of search.v1.SearchService, with Debian's python3-grpcio
and code generated from proto/ by Debian's protobuf tooling (generate.sh).

    /usr/bin/python3 client.py --addr HOST:PORT COMMAND

    point LAT LNG          things containing the point
    query TEXT [SIZE]      every thing whose name contains TEXT, page by page
    stream TEXT            every thing whose name contains TEXT, streamed
    locate [--collection NAME]... [--limit N] [ID,LAT,LNG ...]
                           the things containing each point, through one
                           Locate stream (a few sample points when none)
    demo                   the four above for Paris, "an" and the samples

point, query and stream print one line per thing, "ID<TAB>NAME"; locate
prints one answer per point, in input order, as one JSON line (the protojson
form of LocateResponse, as search-client locate writes it). On error it
prints "Code: message" on stderr with exit status 1, like search-client.
"""

import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402

from search.v1 import search_pb2, search_pb2_grpc  # noqa: E402

DEADLINE = 30  # seconds

# LOCATE_WINDOW is the most points sent ahead of the answers read. A Locate
# stream answers every point, in order; a client that keeps sending without
# reading would only fill buffers (the server stops reading once its answers
# are not taken), so the sender waits for answers instead.
LOCATE_WINDOW = 64

# SAMPLE_POINTS are what locate sends when given none: inside France, in the
# sea, and one bad point, which gets an error in its own answer while the
# stream goes on.
SAMPLE_POINTS = ["paris,48.85,2.35", "berlin,52.52,13.4", "sea,0,-30", "bad,91,0", "nairobi,-1.29,36.82"]


def code_name(code):
    """INVALID_ARGUMENT -> InvalidArgument, as search-client prints codes."""
    return "".join(part.capitalize() for part in code.name.split("_"))


def show(things):
    for t in things:
        print(f"{t.id}\t{t.name}")


def point(stub, lat, lng):
    resp = stub.Search(search_pb2.SearchRequest(point=search_pb2.Point(lat=float(lat), lng=float(lng))), timeout=DEADLINE)
    show(resp.things)


def query(stub, text, size=10):
    token = ""
    while True:
        resp = stub.Search(search_pb2.SearchRequest(query=text, page_size=int(size), page_token=token), timeout=DEADLINE)
        show(resp.things)
        token = resp.next_page_token
        if not token:
            return


def stream(stub, text):
    show(stub.SearchStream(search_pb2.SearchRequest(query=text), timeout=DEADLINE))


def locate(stub, *args):
    """Sends every point through one Locate stream, the scope once in the
    first message's options, and prints the answers as they come. grpcio
    pulls the requests from a generator on a thread of its own; the
    generator takes a slot of a semaphore per point and each answer read
    gives one back, so at most LOCATE_WINDOW points are unanswered and
    memory stays bounded whatever the number of points."""
    options = search_pb2.LocateOptions()
    points = []
    args = list(args)
    while args:
        arg = args.pop(0)
        if arg == "--collection":
            options.collections.append(args.pop(0))
        elif arg == "--limit":
            options.limit = int(args.pop(0))
        else:
            points.append(arg)
    window = threading.Semaphore(LOCATE_WINDOW)
    stop = threading.Event()

    def requests():
        yield search_pb2.LocateRequest(options=options)  # the scope; no point in it
        for p in points or SAMPLE_POINTS:
            while not window.acquire(timeout=0.1):
                if stop.is_set():  # the call ended: nobody reads any more
                    return
            pid, lat, lng = p.split(",")
            yield search_pb2.LocateRequest(id=pid, point=search_pb2.Point(lat=float(lat), lng=float(lng)))

    try:
        for resp in stub.Locate(requests(), timeout=DEADLINE):
            window.release()
            print(json_format.MessageToJson(resp, preserving_proto_field_name=True, indent=None))
    finally:
        stop.set()


def main(argv):
    addr = os.environ.get("SEARCH_ADDR", "localhost:50051")
    if len(argv) >= 2 and argv[0] == "--addr":
        addr, argv = argv[1], argv[2:]
    if not argv:
        sys.exit("usage: client.py [--addr HOST:PORT] point LAT LNG | query TEXT [SIZE] | stream TEXT | locate [--collection NAME]... [--limit N] [ID,LAT,LNG ...] | demo")
    with grpc.insecure_channel(addr) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        command, args = argv[0], argv[1:]
        try:
            if command == "point":
                point(stub, *args)
            elif command == "query":
                query(stub, *args)
            elif command == "stream":
                stream(stub, *args)
            elif command == "locate":
                locate(stub, *args)
            elif command == "demo":
                print("# point 48.85, 2.35")
                point(stub, 48.85, 2.35)
                print('# query "an", pages of 10')
                query(stub, "an", 10)
                print('# stream "an"')
                stream(stub, "an")
                print("# locate", " ".join(SAMPLE_POINTS))
                locate(stub)
            else:
                sys.exit(f"unknown command {command}")
        except grpc.RpcError as err:
            print(f"{code_name(err.code())}: {err.details()}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
