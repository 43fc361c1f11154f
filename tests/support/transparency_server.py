"""A stand-in for the DSA Transparency Database's statement API, on a free loopback port.

It answers as the database does (app/Http/Controllers/Api/v1/Statement*APIController.php,
app/Exceptions/PuidNotUnique*Exception.php at the commit of listings/statement_rules.json):

- ``POST /api/v1/statement``: 201 with the statement and its ``uuid``; 422
  ``{"message", "errors": {field: [...]}}`` for a statement that breaks a
  rule; 422 ``{"message", "errors": {"puid": [...]}, "existing": {"puid"}}``
  for a puid the platform used already;
- ``POST /api/v1/statements`` with ``{"statements": [...]}`` (1 to 100): 201
  ``{"statements": [...]}``; 422 ``{"errors": {"statement_<i>": {...}}}``
  when any breaks a rule (nothing is created); 422 ``{"message", "errors":
  {"puid": [...], "existing_puids": [...]}}`` for puids used already or twice
  in the call (nothing is created);
- ``GET /api/v1/statement/existing-puid/<puid>``: 302 or 404;
- 401 ``{"message": "Unauthenticated."}`` without the right bearer token,
  403 for ``forbidden_token`` (a user without "create statements").

Every rule is ``listings.statement_rules``' (the field rules and enumerations
encoded from the database's files). Faults for tests: ``fail_next(count,
status=503)`` answers the next requests with that status (``Retry-After: 0``),
``drop_next(count)`` closes the connection without an answer, and
``lose_answers(count)`` makes the next POSTs create their statements but
answer 503 (the answer lost on the way back); ``answer_delay`` (seconds) slows every answer, so that
two clients overlap. ``received`` lists every posted puid, ``created`` the
stored statements by puid.
"""

import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from listings.statement_rules import batch_errors, max_batch, statement_errors

EXISTING_PUID = re.compile(r"^/api/v1/statement/existing-puid/([^/]+)$")


class TransparencyServer:
    def __init__(self, *, token="test-token", forbidden_token="forbidden-token"):
        self.token = token
        self.forbidden_token = forbidden_token
        self.created = {}  # puid -> statement as stored
        self.received = []  # every puid posted, in order (refused and duplicate ones too)
        self.requests = []  # (method, path, status)
        self.lock = threading.Lock()
        self.answer_delay = 0.0
        self._faults = []  # ("status", code) | ("drop", None) | ("lose", None), consumed in order
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self):
        host, port = self._server.server_address
        return f"http://{host}:{port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # Faults

    def fail_next(self, count, *, status=503):
        with self.lock:
            self._faults += [("status", status)] * count

    def drop_next(self, count):
        with self.lock:
            self._faults += [("drop", None)] * count

    def lose_answers(self, count):
        with self.lock:
            self._faults += [("lose", None)] * count

    def _fault(self, method):
        """The next fault for a ``method`` request: a lost answer is a POST's only."""
        with self.lock:
            for index, fault in enumerate(self._faults):
                if fault[0] != "lose" or method == "POST":
                    return self._faults.pop(index)
            return None

    # What the database does

    def _authorised(self, header):
        if header == f"Bearer {self.token}":
            return 200
        return 403 if header == f"Bearer {self.forbidden_token}" else 401

    def _store(self, statements):
        """Create ``statements`` (all or none); ``(duplicates, created)``."""
        puids = [statement["puid"] for statement in statements]
        with self.lock:
            self.received += puids
            twice = sorted({puid for puid in puids if puids.count(puid) > 1})
            duplicates = twice or [puid for puid in puids if puid in self.created]
            if duplicates:
                return duplicates, []
            created = []
            for statement in statements:
                stored = {**statement, "uuid": str(uuid.uuid4()), "platform_name": "Stand-in platform"}
                self.created[statement["puid"]] = stored
                created.append(stored)
            return [], created

    def _post_one(self, body):
        errors = statement_errors(body)
        if errors:
            with self.lock:
                self.received.append(body.get("puid") if isinstance(body, dict) else None)
            return 422, {"message": _summary(errors), "errors": errors}
        duplicates, created = self._store([body])
        if duplicates:
            message = "The identifier given is not unique within this platform."
            return 422, {"message": message, "errors": {"puid": [message]}, "existing": {"puid": body["puid"]}}
        return 201, created[0]

    def _post_many(self, body):
        statements = body.get("statements") if isinstance(body, dict) else None
        if not isinstance(statements, list) or not 1 <= len(statements) <= max_batch():
            return 422, {"message": "The statements field must have between 1 and 100 items.",
                         "errors": {"statements": ["The statements field must have between 1 and 100 items."]}}
        errors = batch_errors(statements)
        if errors:
            with self.lock:
                self.received += [item.get("puid") for item in statements if isinstance(item, dict)]
            return 422, {"errors": errors}
        duplicates, created = self._store(statements)
        if duplicates:
            message = "The platform identifier(s) are not all unique within this call."
            return 422, {"message": message, "errors": {"puid": [message], "existing_puids": duplicates}}
        return 201, {"statements": created}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                with server.lock:
                    server.requests.append((self.command, self.path, status))

            def _common(self):
                """The answer before routing (a fault, or the token refused), or None."""
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length) if length else b""
                fault = server._fault(self.command)
                if fault and fault[0] == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return True
                self.lose_answer = fault is not None and fault[0] == "lose"
                if fault and fault[0] == "status":
                    self._answer(fault[1], {"message": "Service Unavailable"}, [("Retry-After", "0")])
                    return True
                authorised = server._authorised(self.headers.get("Authorization", ""))
                if authorised != 200:
                    message = "Unauthenticated." if authorised == 401 else "This action is unauthorized."
                    self._answer(authorised, {"message": message})
                    return True
                return False

            def do_GET(self):
                if self._common():
                    return
                match = EXISTING_PUID.match(self.path)
                if not match:
                    return self._answer(404, {"message": "Not Found"})
                puid = match.group(1)
                with server.lock:
                    found = puid in server.created
                if found:
                    return self._answer(302, {"message": "statement of reason found", "puid": puid})
                return self._answer(404, {"message": "statement of reason not found", "puid": puid})

            def do_POST(self):
                time.sleep(server.answer_delay)
                if self._common():
                    return
                try:
                    body = json.loads(self.body or b"{}")
                except ValueError:
                    return self._answer(400, {"message": "The body is not JSON."})
                if self.path == "/api/v1/statement":
                    status, answer = server._post_one(body)
                elif self.path == "/api/v1/statements":
                    status, answer = server._post_many(body)
                else:
                    return self._answer(404, {"message": "Not Found"})
                if self.lose_answer:
                    return self._answer(503, {"message": "Service Unavailable"}, [("Retry-After", "0")])
                return self._answer(status, answer)

        return Handler


def _summary(errors):
    first = next(iter(errors.values()))[0]
    more = sum(len(messages) for messages in errors.values()) - 1
    return first + (f" (and {more} more errors)" if more else "")
