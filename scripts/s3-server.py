"""moto's S3 server, with conditional writes decided atomically as S3 decides them.

moto checks `If-None-Match` / `If-Match` and then stores the object in separate steps, while
its server answers requests on many threads: two racing `If-None-Match: *` PUTs of one key
can both succeed, and one commit of a table then silently replaces another. S3 itself never
lets both win, and tarn's commit protocol relies on that. This runs moto's server (same
arguments as `moto_server`) with every object write serialized by one lock: PUT (objects,
copies, parts) and POST (which completes multipart uploads).
"""

import sys
import threading

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

if __name__ == "__main__":
    sys.exit(main())
