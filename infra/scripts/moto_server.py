"""moto's server with each DynamoDB write to an item applied whole, as
DynamoDB does.

moto's threaded server checks a condition expression and applies the update
as separate steps with no lock, and creates a missing item by putting a bare
one. Under concurrent requests two conditional writes to one item can both
pass their checks, and one can wipe what the other wrote: a hundred
concurrent `size(active) < :limit` reservations of a quota of ten accepted
eleven, with ten in the set. DynamoDB applies each write to an item
atomically, which the quota, the leases and the counters rely on; this runs
moto with the writes to any one item one at a time.

Each write (PutItem, UpdateItem, DeleteItem, and every item of a
BatchWriteItem or TransactWriteItems) takes the locks of the items it
writes, found by their keys (a put's key attributes are known from the
table's CreateTable), from a fixed set of lock stripes, in one order. Writes
to other items, reads, SQS and S3 stay concurrent: one lock for every write
queued them all behind each other (and behind the Python threads serving
long Scans), and e2e tests timed out. The body is read before a lock is
taken. Arguments are `moto_server`'s.
"""

import io
import json
import sys
import threading

from moto import server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_STRIPES = [threading.Lock() for _ in range(4096)]
# Table name -> its key attribute names, from the CreateTable requests seen.
_key_names = {}
_dispatch = DomainDispatcherApplication.__call__


def _operation(environ):
    service, _, operation = environ.get("HTTP_X_AMZ_TARGET", "").partition(".")
    return operation if service.startswith("DynamoDB") else None


def _stripe(table, key):
    """The stripe of one item: its table and key attributes (the table alone
    when its key attributes are unknown)."""
    names = _key_names.get(table)
    if names is not None and all(name in key for name in names):
        key = {name: key[name] for name in names}
        return hash((table, json.dumps(key, sort_keys=True))) % len(_STRIPES)
    return hash((table,)) % len(_STRIPES)


def _written_items(operation, request):
    """(table, key or item) of every item a write request writes."""
    if operation in ("UpdateItem", "DeleteItem"):
        yield request["TableName"], request["Key"]
    elif operation == "PutItem":
        yield request["TableName"], request["Item"]
    elif operation == "BatchWriteItem":
        for table, writes in request["RequestItems"].items():
            for write in writes:
                if "PutRequest" in write:
                    yield table, write["PutRequest"]["Item"]
                elif "DeleteRequest" in write:
                    yield table, write["DeleteRequest"]["Key"]
    elif operation == "TransactWriteItems":
        for entry in request["TransactItems"]:
            for kind, action in entry.items():
                yield action["TableName"], action["Item" if kind == "Put" else "Key"]


def _stripes_of(operation, body):
    """The stripes a request must hold, in lock order; every stripe for a
    write this cannot read (PartiQL, a body that is not JSON)."""
    if operation in ("ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"):
        return range(len(_STRIPES))
    try:
        request = json.loads(body)
        if operation == "CreateTable":
            _key_names[request["TableName"]] = [k["AttributeName"] for k in request["KeySchema"]]
            return []
        return sorted({_stripe(table, key) for table, key in _written_items(operation, request)})
    except (ValueError, KeyError, TypeError, AttributeError):
        return range(len(_STRIPES))


def _one_write_per_item_at_a_time(self, environ, start_response):
    operation = _operation(environ)
    if operation not in (
        "CreateTable",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "ExecuteStatement",
        "BatchExecuteStatement",
        "ExecuteTransaction",
    ):
        return _dispatch(self, environ, start_response)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    held = []
    try:
        for stripe in _stripes_of(operation, body):
            _STRIPES[stripe].acquire()
            held.append(stripe)
        answer = _dispatch(self, environ, start_response)
        try:
            return [b"".join(answer)]
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
    finally:
        for stripe in reversed(held):
            _STRIPES[stripe].release()


DomainDispatcherApplication.__call__ = _one_write_per_item_at_a_time

if __name__ == "__main__":
    server.main(sys.argv[1:])
