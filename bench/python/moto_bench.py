"""moto's server as the benchmarks run it: `python moto_bench.py HOST PORT`.

Two properties of moto 5 would otherwise be what the warm and fan-out benchmarks measure, and
neither is DynamoDB's:

1. Its backends are not thread-safe. Under the threaded server, concurrent writes to one table
   raise "dictionary changed size during iteration" and answer 500, which the SDK then retries
   after a backoff of up to a second. Here every request is handled under one lock: requests still
   arrive on concurrent connections, and are answered one at a time.
2. `TransactWriteItems` keeps its rollback copy by deep-copying every table the transaction
   names, so each transaction costs time in proportion to the table's size (a table of a few
   thousand items: tens of milliseconds per transaction, growing with every send). Here the
   rollback copy holds only the items the transaction touches, restored the same way when the
   transaction is cancelled: the all-or-nothing behaviour is the same, its cost is per item.
3. `Query` on a table's own key sorts every item of the table, then walks the sorted list for the
   partition and the sort-key condition: each query costs time in proportion to the table (about
   50 ms for an empty result from a table of 2,000 items). DynamoDB finds a partition's key range
   directly. Here a query on the table's keys starts from the partition's items only, narrowed by
   the sort-key prefix of a `begins_with`; moto then applies every condition itself, as before.

Everything else is moto as `moto_server` runs it (the same application and request handler).
"""

import copy
import sys
import threading

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class _TablesAreNotCopied:
    """Stands in for the `copy` module inside moto's DynamoDB models: a table is not deep-copied
    (the transaction's own rollback copy below replaces that); anything else is."""

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, dynamodb_models.Table):
            return value
        return copy.deepcopy(value, memo)


def _item_key(backend, op):
    table = backend.get_table(op["TableName"])
    if "Key" in op:
        return op["Key"]
    attrs = op["Item"]
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: attrs[name] for name in names if name in attrs}


_original_transact_write_items = DynamoDBBackend.transact_write_items


def _transact_write_items(self, transact_items):
    before = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        try:
            key = _item_key(self, op)
            current = self.get_item(op["TableName"], key)
        except Exception:
            continue  # moto's own validation below reports it
        attrs = copy.deepcopy(current.to_json()["Attributes"]) if current else None
        before.append((op["TableName"], key, attrs))
    try:
        return _original_transact_write_items(self, transact_items)
    except Exception:
        # Restored in reverse, so that an item named twice ends as it was first.
        for table_name, key, attrs in reversed(before):
            if attrs is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attrs)
        raise


_original_query = Table.query


def _query(self, hash_key, range_comparison, range_objs, *args, **kwargs):
    # moto's backend passes the index name as the eighth positional argument.
    index_name = args[4] if len(args) > 4 else kwargs.get("index_name")
    if index_name or hash_key is None or not self.range_key_attr:
        return _original_query(self, hash_key, range_comparison, range_objs, *args, **kwargs)
    partition = list(self.items.get(hash_key, {}).values())
    if (range_comparison or "").lower() == "begins_with" and range_objs:
        prefix = range_objs[0].value
        partition = [i for i in partition if str(i.range_key.value).startswith(prefix)]
    # An instance attribute shadows the method for this one call (requests are one at a time).
    self.all_items = lambda: partition
    try:
        return _original_query(self, hash_key, range_comparison, range_objs, *args, **kwargs)
    finally:
        del self.all_items


def application():
    dynamodb_models.copy = _TablesAreNotCopied
    DynamoDBBackend.transact_write_items = _transact_write_items
    Table.query = _query
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    return one_at_a_time


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    run_simple(
        host,
        port,
        application(),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
