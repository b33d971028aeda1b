"""moto_server, with DynamoDB's requests answered one at a time.

`localstack/start` runs this instead of the `moto_server` command; arguments are the same.

DynamoDB checks a write's ConditionExpression and makes the write as one step per item: of
concurrent conditional writes to one item, exactly one succeeds. moto's DynamoDB checks and then
writes without a lock while its server answers each request in a thread of its own, so two
conditional writes that race can both succeed (seen here: 1 of 30 races of 16 `UpdateItem`s
with `attribute_not_exists(...)` let two through). The gateway's approvals depend on that
guarantee (gateway/src/approval/dynamo.rs), so DynamoDB's requests (their `X-Amz-Target` starts
with `DynamoDB_`) are served under one lock here; every other service is served as before.
"""

import sys
import threading

import moto.server
from werkzeug import serving

_dynamodb = threading.Lock()
_run_simple = serving.run_simple


def _serialized(app):
    def serve(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with _dynamodb:
                # The whole answer is produced under the lock.
                return list(app(environ, start_response))
        return app(environ, start_response)

    return serve


def _run_simple_serialized(host, port, application, **options):
    return _run_simple(host, port, _serialized(application), **options)


if __name__ == "__main__":
    moto.server.run_simple = _run_simple_serialized
    moto.server.main(sys.argv[1:])
