"""A loopback OTLP/HTTP sink for measuring what tracing costs.

    python3 bench/otlp_sink.py [--port 4318]

It answers every POST /v1/traces with 200 and an empty protobuf response,
and prints the requests and bytes it took when it is stopped (Ctrl-C).
Then, in another terminal, side by side:

    jamjet bench --workload linear10 -n 1000
    jamjet --otlp-endpoint http://127.0.0.1:4318 bench --workload linear10 -n 1000
"""
import argparse
import http.server
import sys


class Sink(http.server.BaseHTTPRequestHandler):
    requests = 0
    taken = 0

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        self.rfile.read(n)
        Sink.requests += 1
        Sink.taken += n
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=4318)
    a = ap.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Sink)
    print(f"OTLP sink on http://127.0.0.1:{a.port}", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    print(f"{Sink.requests} requests, {Sink.taken} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
