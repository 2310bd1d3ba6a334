"""moto's S3 server, with conditional writes decided atomically as S3 decides them.

moto checks `If-None-Match` / `If-Match` and then stores the object in separate steps, while
its server answers requests on many threads: two racing `If-None-Match: *` PUTs of one key
can both succeed, and one commit of a table then silently replaces another. S3 itself never
lets both win, and tarn's commit protocol relies on that. This runs moto's server (same
arguments as `moto_server`) with every object write serialized by one lock: PUT (objects,
copies, parts) and POST (which completes multipart uploads).

With TARN_S3_LATENCY_MS set, every request waits that long before moto handles it, outside
the lock, as a request to a distant region waits on the network: the server then costs what
S3 costs a client, a round trip per request, and requests sent together wait together.
Without it the server's own time per request (a few milliseconds of Python, writes one at a
time) is all a request costs.
"""

import os
import sys
import threading
import time

from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3.responses import S3Response
from moto.server import main

_writes = threading.Lock()


def _serialized(handler):
    def locked(self, *args, **kwargs):
        with _writes:
            return handler(self, *args, **kwargs)

    return locked


S3Response._key_response_put = _serialized(S3Response._key_response_put)
S3Response._key_response_post = _serialized(S3Response._key_response_post)

_latency = float(os.environ.get("TARN_S3_LATENCY_MS", "0")) / 1000.0
if _latency > 0:
    _dispatch = DomainDispatcherApplication.__call__

    def _delayed(self, environ, start_response):
        time.sleep(_latency)
        return _dispatch(self, environ, start_response)

    DomainDispatcherApplication.__call__ = _delayed

if __name__ == "__main__":
    sys.exit(main())
