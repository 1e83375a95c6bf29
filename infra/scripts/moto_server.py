"""moto's server with each DynamoDB request applied whole, as DynamoDB does.

moto's threaded server checks a condition expression and applies the update
as separate steps with no lock, and creates a missing item by putting a bare
one. Under concurrent requests two conditional writes can both pass their
checks, and one can wipe what the other wrote: a hundred concurrent
`size(active) < :limit` reservations of a quota of ten accepted eleven, with
ten in the set. DynamoDB applies each write to an item atomically, which the
quota, the leases and the counters rely on; this runs moto with DynamoDB's
requests one at a time (SQS and S3, whose long polls must not wait on each
other, stay concurrent). Arguments are `moto_server`'s.
"""

import sys
import threading

from moto import server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_dynamodb = threading.Lock()
_dispatch = DomainDispatcherApplication.__call__


def _one_dynamodb_request_at_a_time(self, environ, start_response):
    if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
        return _dispatch(self, environ, start_response)
    with _dynamodb:
        answer = _dispatch(self, environ, start_response)
        try:
            body = b"".join(answer)
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
    return [body]


DomainDispatcherApplication.__call__ = _one_dynamodb_request_at_a_time

if __name__ == "__main__":
    server.main(sys.argv[1:])
