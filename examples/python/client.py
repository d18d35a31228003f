#!/usr/bin/python3
"""A Python client of search.v1.SearchService, with Debian's python3-grpcio
and code generated from proto/ by Debian's protobuf tooling (generate.sh).

    /usr/bin/python3 client.py --addr HOST:PORT COMMAND

    point LAT LNG          things containing the point
    query TEXT [SIZE]      every thing whose name contains TEXT, page by page
    stream TEXT            every thing whose name contains TEXT, streamed
    demo                   the three above for Paris and "an"

It prints one line per thing, "ID<TAB>NAME", and on error "Code: message"
on stderr with exit status 1, like search-client.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402

from search.v1 import search_pb2, search_pb2_grpc  # noqa: E402

DEADLINE = 30  # seconds


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


def main(argv):
    addr = os.environ.get("SEARCH_ADDR", "localhost:50051")
    if len(argv) >= 2 and argv[0] == "--addr":
        addr, argv = argv[1], argv[2:]
    if not argv:
        sys.exit("usage: client.py [--addr HOST:PORT] point LAT LNG | query TEXT [SIZE] | stream TEXT | demo")
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
            elif command == "demo":
                print("# point 48.85, 2.35")
                point(stub, 48.85, 2.35)
                print('# query "an", pages of 10')
                query(stub, "an", 10)
                print('# stream "an"')
                stream(stub, "an")
            else:
                sys.exit(f"unknown command {command}")
        except grpc.RpcError as err:
            print(f"{code_name(err.code())}: {err.details()}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
