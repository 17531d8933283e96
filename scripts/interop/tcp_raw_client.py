#!/usr/bin/env python3
"""An independent TCP client of the Apache EventMesh wire protocol, written from the protocol
reference with nothing but the Python standard library (it shares no code with the Rust codec).

It behaves as the Java SDK does (v1.9+ framing, ten-digit seqs of 0-8, acks sent after handling a
push and echoing the pushed body) and, for one publisher, as the Go SDK does (pre-1.9 length
rule). Run against a mesh:

    python3 scripts/interop/tcp_raw_client.py --addr 127.0.0.1:10000

Exit status 0 when every check passed; otherwise it prints what failed and exits 1.
"""

import argparse
import json
import random
import socket
import struct
import sys
import time
import uuid

MAGIC = b"EventMesh"
VERSION = b"0000"
WAIT = 10.0


class Failure(Exception):
    pass


def seq():
    return "".join(random.choice("012345678") for _ in range(10))


def encode(header, body=b"", legacy=False):
    """One frame. v1.9+: length = 13 + H + B. Pre-1.9 (Go SDK): length = 8 + H + B."""
    h = json.dumps(header, separators=(",", ":")).encode()
    length = (8 if legacy else 13) + len(h) + len(body)
    return MAGIC + VERSION + struct.pack(">ii", length, len(h)) + h + body


class Conn:
    def __init__(self, addr, legacy=False):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=WAIT)
        self.legacy = legacy
        self.buf = b""

    def send(self, cmd, body=None, seq_=None, properties=None, code=0):
        header = {"cmd": cmd, "code": code, "seq": seq_ or seq(), "properties": properties or {}}
        raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.sock.sendall(encode(header, raw, self.legacy))
        return header["seq"]

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failure("the server closed the connection")
            self.buf += chunk

    def recv(self, timeout=WAIT):
        """The next frame as (header dict, body bytes), decoded with this connection's rule."""
        deadline = time.monotonic() + timeout
        try:
            self._fill(21, deadline)
            if self.buf[:9] != MAGIC or self.buf[9:13] != VERSION:
                raise Failure(f"bad magic/version from the server: {self.buf[:13]!r}")
            length, hlen = struct.unpack(">ii", self.buf[13:21])
            body_len = length - (8 if self.legacy else 13) - hlen
            if hlen < 0 or body_len < 0:
                raise Failure(f"bad lengths from the server: length={length} header={hlen}")
            total = 21 + hlen + body_len
            self._fill(total, deadline)
        except socket.timeout:
            raise Failure("timed out waiting for a frame") from None
        frame, self.buf = self.buf[:total], self.buf[total:]
        header = json.loads(frame[21 : 21 + hlen])
        return header, frame[21 + hlen :]

    def expect(self, cmd, timeout=WAIT):
        """Reads frames until one with `cmd` (answering heartbeats never needed: none are sent)."""
        header, body = self.recv(timeout)
        if header.get("cmd") != cmd:
            raise Failure(f"expected {cmd}, got {header.get('cmd')} code={header.get('code')} desc={header.get('desc')}")
        if header.get("command") not in (None, cmd):
            raise Failure(f"duplicate `command` field {header.get('command')} differs from cmd {cmd}")
        return header, body

    def close(self):
        self.sock.close()


def user_agent(group, purpose, pid):
    return {
        "env": "test", "subsystem": "5023", "path": "/data/app/interop", "pid": pid,
        "host": "127.0.0.1", "port": 8362, "version": "2.0.11", "username": "u",
        "password": "p", "idc": "FT", "group": group, "purpose": purpose, "unack": 0,
    }


PROPS = {"protocoltype": "eventmeshmessage", "protocolversion": "1.0", "protocoldesc": "tcp"}


def hello(addr, group, purpose, legacy=False):
    c = Conn(addr, legacy)
    s = c.send("HELLO_REQUEST", user_agent(group, purpose, random.randint(1000, 60000)))
    h, _ = c.expect("HELLO_RESPONSE")
    if h.get("code") != 0 or h.get("seq") != s:
        raise Failure(f"HELLO answered code={h.get('code')} seq={h.get('seq')} desc={h.get('desc')}")
    return c


def subscriber(addr, group, topic, mode="CLUSTERING", typ="ASYNC"):
    c = hello(addr, group, "sub")
    c.send("SUBSCRIBE_REQUEST", {"topicList": [{"topic": topic, "mode": mode, "type": typ}]})
    h, _ = c.expect("SUBSCRIBE_RESPONSE")
    if h.get("code") != 0:
        raise Failure(f"SUBSCRIBE answered code={h.get('code')} desc={h.get('desc')}")
    c.send("LISTEN_REQUEST")
    c.expect("LISTEN_RESPONSE")
    return c


def message(topic, body, **props):
    return {"topic": topic, "properties": dict(props), "headers": {"datacontenttype": "text/plain"}, "body": body}


def publish(c, cmd, topic, body, **props):
    s = c.send(cmd, message(topic, body, **props), properties=PROPS)
    h, echo = c.expect(cmd + "_ACK")
    if h.get("code") != 0 or h.get("seq") != s:
        raise Failure(f"{cmd} answered code={h.get('code')} seq={h.get('seq')} desc={h.get('desc')}")
    return echo


def receive(c, cmd):
    """One push of `cmd`, acked as the Java SDK does (same seq, body echoed); returns its message."""
    h, body = c.expect(cmd)
    c.send(cmd + "_ACK", body, seq_=h["seq"], properties=h.get("properties") or {})
    return h, json.loads(body)


def check_async_pubsub(addr, legacy_publisher):
    run = uuid.uuid4().hex[:8]
    topic, group = f"interop-async-{run}", f"interop-g-{run}"
    sub = subscriber(addr, group, topic)
    pub = hello(addr, f"interop-pub-{run}", "pub", legacy=legacy_publisher)
    sent = [f"hello-{i}" for i in range(20)]
    for body in sent:
        publish(pub, "ASYNC_MESSAGE_TO_SERVER", topic, body)
    got = []
    for _ in sent:
        h, msg = receive(sub, "ASYNC_MESSAGE_TO_CLIENT")
        if msg.get("topic") != topic:
            raise Failure(f"push for topic {msg.get('topic')}, expected {topic}")
        got.append(msg.get("body"))
    if sorted(got) != sorted(sent):
        raise Failure(f"received {got}, expected {sent}")
    pub.close()
    sub.close()


def check_broadcast(addr):
    run = uuid.uuid4().hex[:8]
    topic, group = f"interop-bcast-{run}", f"interop-bg-{run}"
    subs = [subscriber(addr, group, topic, mode="BROADCASTING") for _ in range(2)]
    pub = hello(addr, f"interop-pub-{run}", "pub")
    publish(pub, "BROADCAST_MESSAGE_TO_SERVER", topic, "to-everyone")
    for s in subs:
        _, msg = receive(s, "BROADCAST_MESSAGE_TO_CLIENT")
        if msg.get("body") != "to-everyone":
            raise Failure(f"broadcast body {msg.get('body')!r}")
        s.close()
    pub.close()


def check_request_reply(addr):
    run = uuid.uuid4().hex[:8]
    topic, group = f"interop-rr-{run}", f"interop-rg-{run}"
    responder = subscriber(addr, group, topic, typ="SYNC")
    requester = hello(addr, f"interop-req-{run}", "pub")
    req_seq = requester.send("REQUEST_TO_SERVER", message(topic, "ping", ttl="5000"), properties=PROPS)
    h, body = responder.expect("REQUEST_TO_CLIENT")
    request = json.loads(body)
    if request.get("body") != "ping":
        raise Failure(f"request body {request.get('body')!r}")
    responder.send("REQUEST_TO_CLIENT_ACK", body, seq_=h["seq"], properties=h.get("properties") or {})
    # The Java SDK's reply copies the request's properties and sets its own body.
    reply = {"topic": topic, "properties": request.get("properties") or {}, "headers": {}, "body": "pong"}
    responder.send("RESPONSE_TO_SERVER", reply, properties=PROPS)
    h, body = requester.expect("RESPONSE_TO_CLIENT")
    if h.get("seq") != req_seq or h.get("code") != 0:
        raise Failure(f"RESPONSE_TO_CLIENT seq={h.get('seq')} (sent {req_seq}) code={h.get('code')} desc={h.get('desc')}")
    if json.loads(body).get("body") != "pong":
        raise Failure(f"reply body {body!r}")
    requester.send("RESPONSE_TO_CLIENT_ACK", body, seq_=h["seq"])
    requester.close()
    responder.close()


def check_cloudevents_publisher(addr):
    """A publish in the CloudEvents JSON format reaches an eventmeshmessage subscriber."""
    run = uuid.uuid4().hex[:8]
    topic, group = f"interop-ce-{run}", f"interop-cg-{run}"
    sub = subscriber(addr, group, topic)
    pub = hello(addr, f"interop-pub-{run}", "pub")
    event = {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": "/interop", "type": "interop.test",
        "subject": topic, "datacontenttype": "text/plain", "data": "from-cloudevents",
    }
    props = {"protocoltype": "cloudevents", "protocolversion": "1.0", "protocoldesc": "tcp"}
    s = pub.send("ASYNC_MESSAGE_TO_SERVER", json.dumps(event).encode(), properties=props)
    h, _ = pub.expect("ASYNC_MESSAGE_TO_SERVER_ACK")
    if h.get("code") != 0 or h.get("seq") != s:
        raise Failure(f"CloudEvents publish answered code={h.get('code')} desc={h.get('desc')}")
    h, body = sub.expect("ASYNC_MESSAGE_TO_CLIENT")
    props = h.get("properties") or {}
    pushed = json.loads(body)
    if props.get("protocoltype") == "cloudevents":
        data = pushed.get("data")
    else:
        data = pushed.get("body")
    if data != "from-cloudevents":
        raise Failure(f"pushed {pushed!r}")
    sub.send("ASYNC_MESSAGE_TO_CLIENT_ACK", body, seq_=h["seq"], properties=props)
    pub.close()
    sub.close()


def check_bad_magic(addr):
    c = Conn(addr)
    c.sock.sendall(b"NotEventMesh" + b"\x00" * 40)
    h, _ = c.expect("SERVER_GOODBYE_REQUEST")
    if h.get("code") != 1 or not h.get("desc"):
        raise Failure(f"bad magic answered code={h.get('code')} desc={h.get('desc')!r}")
    c.sock.settimeout(WAIT)
    try:
        rest = c.sock.recv(1)
    except ConnectionResetError:
        rest = b""
    if rest:
        raise Failure("the connection stayed open after the goodbye")
    c.close()


def check_heartbeat(addr):
    c = hello(addr, "interop-hb", "pub")
    s = c.send("HEARTBEAT_REQUEST")
    h, _ = c.expect("HEARTBEAT_RESPONSE")
    if h.get("seq") != s:
        raise Failure(f"heartbeat seq {h.get('seq')} (sent {s})")
    c.send("CLIENT_GOODBYE_REQUEST")
    c.expect("CLIENT_GOODBYE_RESPONSE")
    c.close()


CHECKS = [
    ("heartbeat and goodbye", check_heartbeat),
    ("async pub/sub (v1.9 framing)", lambda a: check_async_pubsub(a, legacy_publisher=False)),
    ("async pub/sub, Go-SDK framing publisher", lambda a: check_async_pubsub(a, legacy_publisher=True)),
    ("broadcast", check_broadcast),
    ("request-reply", check_request_reply),
    ("cloudevents publisher, eventmeshmessage subscriber", check_cloudevents_publisher),
    ("bad magic gets a goodbye", check_bad_magic),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="127.0.0.1:10000")
    args = ap.parse_args()
    failed = 0
    for name, check in CHECKS:
        try:
            check(args.addr)
            print(f"ok   {name}")
        except (Failure, OSError, ValueError, KeyError) as e:
            failed += 1
            print(f"FAIL {name}: {e}")
    print(f"{len(CHECKS) - failed} of {len(CHECKS)} checks passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
