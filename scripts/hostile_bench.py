#!/usr/bin/env python3
"""The two memory attacks of SPEC §7 against a running gateway, on raw sockets (standard
library only). Prints the gateway's RSS (from /proc/PID/status) as the attack runs.

  scripts/hostile_bench.py --port 8375 --pid $GW --world sample --profile-bytes 61440 sink
  scripts/hostile_bench.py --port 8375 --pid $GW --world sample --profile-bytes 61440 quadratic

sink:      40 anonymous users with large profiles; 5 sockets of one of them each send 40
           `chat.direct.create` naming the other 39 and never read. RSS is sampled for 10 s,
           then the sockets close.
quadratic: 41 users; the hub creates 39 channels of 40 members (everyone but one), then logs
           in 3 times at once: size of `authenticated`, login time, RSS.
"""
import argparse
import base64
import json
import os
import socket
import struct
import sys
import threading
import time


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Raw:
    def __init__(self, port, world):
        self.s = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(
            (f"GET /ws/world/{world}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += self.s.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.next_id = 1

    def send(self, value):
        payload = json.dumps(value).encode()
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.s.sendall(header + mask + body)

    def _exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.s.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)

    def recv(self):
        message = bytearray()
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            payload = self._exact(n)
            op = b0 & 0x0F
            if op == 0x8:
                raise EOFError(f"closed {payload[:2].hex()}")
            if op in (0x9, 0xA):
                continue
            message += payload
            if b0 & 0x80:
                return json.loads(message)

    def request(self, action, body):
        rid = self.next_id
        self.next_id += 1
        self.send([action, rid, body])
        while True:
            v = self.recv()
            if v[0] in ("success", "error") and v[1] == rid:
                return v

    def login(self, client_id):
        self.send(["authenticate", {"client_id": client_id}])
        v = self.recv()
        assert v[0] == "authenticated", v
        return v[1]


def user(port, world, client_id, profile_bytes):
    ws = Raw(port, world)
    uid = ws.login(client_id)["user.config"]["id"]
    base = {"display_name": client_id, "bio": ""}
    filler = profile_bytes - len(json.dumps(base, separators=(",", ":")))
    profile = dict(base, bio="b" * max(filler, 0))
    r = ws.request("user.update", {"profile": profile})
    if r[0] != "success":
        sys.exit(f"user.update of {profile_bytes} bytes: {r}")
    return ws, uid


def sink(args):
    tag = f"sink{int(time.time())}"
    users = [user(args.port, args.world, f"{tag}-{i}", args.profile_bytes) for i in range(40)]
    ids = [uid for _, uid in users]
    sender = users[1][0]
    for ws, _ in users[2:] + users[:1]:
        ws.s.close()
    r = sender.request("chat.direct.create", {"users": [ids[0]]})
    channel = r[2]["id"]
    print(f"rss before: {rss_mib(args.pid):.1f} MiB")
    sockets = []
    for _ in range(5):
        ws = Raw(args.port, args.world)
        ws.login(f"{tag}-0")
        sockets.append(ws)
    for ws in sockets:
        for k in range(40):
            ws.send(["chat.direct.create", k + 1, {"users": ids[1:]}])
    # Meanwhile another user sends messages into a channel with the sink's user: each reply's
    # latency (a reply that takes over 10 s counts as stalled).
    latencies = []
    stalled = [0]

    def send_messages():
        sender.s.settimeout(10)
        for k in range(60):
            started = time.time()
            try:
                r = sender.request("chat.send", {"channel": channel, "event_type": "channel.message",
                                                 "content": {"type": "text", "body": f"message {k}"}})
            except (socket.timeout, EOFError):
                stalled[0] += 1
                break
            latencies.append(time.time() - started)
            time.sleep(0.1)

    sending = threading.Thread(target=send_messages)
    sending.start()
    peak = 0.0
    for second in range(1, 11):
        time.sleep(1)
        rss = rss_mib(args.pid)
        peak = max(peak, rss)
        print(f"  t={second:2d}s rss={rss:.1f} MiB")
    sending.join()
    print(f"  sender: {len(latencies)} replies, max {max(latencies, default=0) * 1000:.0f} ms, stalled: {stalled[0]}")
    print(json.dumps({"scenario": "sink", "profile_bytes": args.profile_bytes, "rss_peak_mib": round(peak, 1),
                      "sender_replies": len(latencies), "sender_max_ms": round(max(latencies, default=0) * 1000),
                      "sender_stalled": stalled[0]}))
    for ws in sockets:
        ws.s.close()


def quadratic(args):
    tag = f"quad{int(time.time())}"
    members = [user(args.port, args.world, f"{tag}-{i}", args.profile_bytes) for i in range(40)]
    ids = [uid for _, uid in members]
    for ws, _ in members:
        ws.s.close()
    hub, _ = user(args.port, args.world, f"{tag}-hub", args.profile_bytes)
    for k in range(39):
        time.sleep(0.06)
        r = hub.request("chat.direct.create", {"users": ids[:k] + ids[k + 1:]})
        if r[0] != "success":
            sys.exit(f"chat.direct.create: {r}")
    hub.s.close()
    print(f"rss before: {rss_mib(args.pid):.1f} MiB")
    results = []
    peak = [0.0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib(args.pid))
            time.sleep(0.05)

    def login():
        ws = Raw(args.port, args.world)
        started = time.time()
        ws.send(["authenticate", {"client_id": f"{tag}-hub"}])
        frame = ws.recv()
        elapsed = time.time() - started
        results.append((len(json.dumps(frame, separators=(",", ":"))), len(frame[1]["chat.channels"]), elapsed))
        ws.s.close()

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=login) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.5)
    done.set()
    sampler.join()
    for size, channels, elapsed in results:
        print(f"  authenticated: {size / 1e6:.2f} MB, {channels} channels, {elapsed:.2f} s")
    print(json.dumps({
        "scenario": "quadratic", "profile_bytes": args.profile_bytes,
        "authenticated_bytes": max(r[0] for r in results),
        "login_s_max": round(max(r[2] for r in results), 2),
        "rss_peak_mib": round(peak[0], 1),
    }))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=["sink", "quadratic"])
    p.add_argument("--port", type=int, default=8375)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--world", default="sample")
    p.add_argument("--profile-bytes", type=int, default=16384)
    args = p.parse_args()
    {"sink": sink, "quadratic": quadratic}[args.scenario](args)


if __name__ == "__main__":
    main()
