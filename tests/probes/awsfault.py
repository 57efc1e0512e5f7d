"""A tiny HTTP fault proxy in front of moto: chosen AWS actions answer with AWS's error shapes, the rest is forwarded.

boto3 talks to the proxy as it would to AWS with ``--endpoint-url``; the proxy reads the
query-protocol ``Action`` and either answers it with an error document (the ELBv2
``<ErrorResponse>`` or the EC2 ``<Response><Errors>`` shape, with the status AWS uses) or
forwards the request unchanged to moto. It counts every action it sees.
"""

from __future__ import annotations

import http.client
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape


@dataclass
class FaultRule:
    status: int
    code: str
    message: str
    times: int | None = None  # None: forever
    hits: int = 0


def error_document(service: str, code: str, message: str) -> bytes:
    request_id = str(uuid.uuid4())
    if service == "ec2":
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{escape(code)}</Code>'
                f"<Message>{escape(message)}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>").encode()
    return (f'<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><Error><Type>Sender</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>").encode()


def denied_message(action: str, user: str = "arn:aws:iam::123456789012:user/oncall") -> str:
    return f"User: {user} is not authorized to perform: {action}"


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.rules: dict[str, FaultRule] = {}
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                action = (parse_qs(body.decode("utf-8", "replace")).get("Action") or [""])[0]
                auth = self.headers.get("Authorization", "")
                service = "ec2" if "/ec2/aws4_request" in auth else "elasticloadbalancing"
                rule = proxy._take(action)
                if rule is not None:
                    doc = error_document("ec2" if service == "ec2" else "elb", rule.code, rule.message)
                    self.send_response(rule.status)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(doc)))
                    self.end_headers()
                    self.wfile.write(doc)
                    return
                self._forward(body)

            def do_GET(self):
                self._forward(b"")

            def _forward(self, body: bytes) -> None:
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="aws-fault-proxy", daemon=True)
        self.thread.start()

    @property
    def endpoint_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _take(self, action: str) -> FaultRule | None:
        with self._lock:
            self.calls[action] += 1
            rule = self.rules.get(action)
            if rule is None or (rule.times is not None and rule.hits >= rule.times):
                return None
            rule.hits += 1
            return rule

    # what tests ask for

    def fail(self, action: str, status: int, code: str, message: str, times: int | None = None) -> FaultRule:
        with self._lock:
            rule = self.rules[action] = FaultRule(status, code, message, times)
        return rule

    def deny(self, action: str, iam_action: str) -> FaultRule:
        return self.fail(action, 403, "AccessDenied", denied_message(iam_action))

    def throttle(self, action: str, times: int | None = None) -> FaultRule:
        return self.fail(action, 400, "Throttling", "Rate exceeded", times)

    def reset(self) -> None:
        with self._lock:
            self.rules.clear()
            self.calls.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
