#!/usr/bin/env python3
"""Small DNS-over-TLS clients for loadtest/compare.sh (standard library only).

  dotclient.py hold --port P --count N --ready FILE [--first I] [--timeout S] [--h2]
      Open N TLS connections to 127.0.0.1:P one after the other, send one DoT query on each
      and read its answer, then hold them all idle. When done (or at the first connection
      that fails), write {"held": K, "failed": F, "error": "..."} to FILE (atomically) and
      keep the connections open until SIGTERM/SIGINT, until the parent process goes away, or
      for --max-hold seconds.
      --h2: idle HTTP/2 connections (a DoH server) instead: ALPN "h2" (refused when the server
      picks another protocol), the client connection preface and an empty SETTINGS frame;
      then read the server's frames until its SETTINGS has come and it has acknowledged ours,
      acknowledge its SETTINGS, and hold the connection. No request is sent.

  dotclient.py doh-uris --queries FILE [--path /dns-query] > URIS
      One RFC 8484 GET URI per line of the dnsperf-format FILE (NAME TYPE), the query (ID 0,
      RD set) in ?dns= as base64url without padding: h2load's -i input, so that h2load asks
      the same queries as dnsperf.

  dotclient.py resume --port P --seconds S [--tls 1.3|1.2]
      Resumed-handshake loop: one full handshake to get a session ticket, then for S seconds
      connect with the newest ticket, finish the handshake, wait for the server's
      NewSessionTicket (TLS 1.3 sends it after the handshake, so the client has to read to get
      it; `openssl s_time -reuse` never reads, hence never resumes TLS 1.3) and close.
      Prints {"connections": N, "reused": R, "elapsed_s": T} on stdout.

  dotclient.py load --port P --conns N --rate R --seconds S --queries FILE [--pids "PID ..."]
                    [--backend-pid PID]
      Rate-limited load over many connections with an epoll event loop (asyncio), where dnsperf
      polls each of its sockets in turn and so runs out of CPU long before 5,000 connections:
      open N connections (and send one query on each), then for S seconds send R queries per
      second, spread round-robin over the connections (so with N = R each connection asks once
      a second), from the dnsperf-format FILE. The CPU time of the server (the processes in
      --pids, all threads) and of the backend is read from /proc at the start and the end of
      that window, so connection set-up is not charged to the queries. Prints one JSON line.

Only 127.0.0.1 is used: this is a load tool for servers on this machine.
"""
import argparse
import asyncio
import base64
import json
import os
import select
import signal
import socket
import ssl
import struct
import sys
import time

HOST = "127.0.0.1"


def context(tls=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The test certificate is self-signed; the load test measures the server, not PKI.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls == "1.3":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    elif tls == "1.2":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33}


def query(qid, name, qtype=1):
    """A DoT frame: 2-byte length, then a DNS query with RD set."""
    msg = struct.pack(">HHHHHH", qid & 0xFFFF, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        msg += bytes([len(label)]) + label.encode()
    msg += b"\x00" + struct.pack(">HH", qtype, 1)
    return struct.pack(">H", len(msg)) + msg


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the server")
        buf += chunk
    return buf


def one_answer(sock, qid, name):
    sock.sendall(query(qid, name))
    (length,) = struct.unpack(">H", recv_exact(sock, 2))
    answer = recv_exact(sock, length)
    if struct.unpack(">H", answer[:2])[0] != qid & 0xFFFF:
        raise ValueError("answer with the wrong ID")
    return answer


# HTTP/2 (RFC 9113): the client connection preface, and the frame header: 24-bit length, type,
# flags, 31-bit stream ID.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_SETTINGS = 0x4
H2_GOAWAY = 0x7
H2_ACK = 0x1


def h2_frame(ftype, flags=0, stream=0, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, stream) + payload


def h2_settle(sock):
    """Open an HTTP/2 connection on a TLS socket that negotiated "h2": our preface and an empty
    SETTINGS; then the server's frames until both its SETTINGS and its ACK of ours have come
    (other frames, e.g. WINDOW_UPDATE, are skipped); ACK its SETTINGS."""
    if sock.selected_alpn_protocol() != "h2":
        raise ValueError("the server chose ALPN %r, not h2" % sock.selected_alpn_protocol())
    sock.sendall(H2_PREFACE + h2_frame(H2_SETTINGS))
    got_settings = got_ack = False
    while not (got_settings and got_ack):
        header = recv_exact(sock, 9)
        length = struct.unpack(">I", b"\0" + header[:3])[0]
        ftype, flags = header[3], header[4]
        recv_exact(sock, length)
        if ftype == H2_GOAWAY:
            raise ConnectionError("GOAWAY from the server")
        if ftype == H2_SETTINGS:
            if flags & H2_ACK:
                got_ack = True
            else:
                got_settings = True
                sock.sendall(h2_frame(H2_SETTINGS, H2_ACK))


def doh_uris(args):
    n = 0
    with open(args.queries) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].upper() in QTYPES:
                wire = query(0, parts[0], QTYPES[parts[1].upper()])[2:]
                print("https://127.0.0.1%s?dns=%s" % (args.path, base64.urlsafe_b64encode(wire).decode().rstrip("=")))
                n += 1
    if not n:
        raise SystemExit("no usable queries in %s" % args.queries)
    return 0


def write_atomic(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def hold(args):
    ctx = context()
    if args.h2:
        ctx.set_alpn_protocols(["h2"])
    conns = []
    error = ""
    failed = 0
    last_note = time.monotonic()
    for i in range(args.count):
        raw = None
        try:
            raw = socket.create_connection((HOST, args.port), timeout=args.timeout)
            tls = ctx.wrap_socket(raw)
            if args.h2:
                h2_settle(tls)
            else:
                one_answer(tls, i, "h%05d.bench.test." % ((args.first + i) % args.names))
            tls.settimeout(None)
            conns.append(tls)
        except (OSError, ValueError, ConnectionError) as e:
            failed += 1
            error = "connection %d: %s" % (i + 1, e)
            if raw is not None:
                raw.close()
            # The server is at a limit (file descriptors, maxconn): more attempts would only
            # wait out the same timeout.
            break
        now = time.monotonic()
        if now - last_note >= 5:
            print("  [dotclient %d] %d/%d connections open" % (os.getpid(), len(conns), args.count),
                  file=sys.stderr)
            last_note = now
    write_atomic(args.ready, {"held": len(conns), "failed": failed, "error": error})

    def stop(_sig, _frame):
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Hold until told to stop, until the parent goes away, or for --max-hold at most; the
    # connections stay idle: nothing is read or written on them.
    parent = os.getppid()
    deadline = time.monotonic() + args.max_hold
    while time.monotonic() < deadline and os.getppid() == parent:
        time.sleep(0.5)
    return 0


def resume(args):
    ctx = context(args.tls)
    n = reused = 0

    def connect(session, wait):
        """One handshake (resuming `session` if given); then wait up to `wait` seconds for a
        new ticket. Returns (newest session, resumed?, got a new ticket?)."""
        raw = socket.create_connection((HOST, args.port), timeout=5)
        tls = ctx.wrap_socket(raw, session=session, do_handshake_on_connect=True)
        was_reused = tls.session_reused
        got, fresh = session, False
        if tls.version() != "TLSv1.3":
            # TLS 1.2 tickets (or session IDs) come inside the handshake.
            got, fresh = tls.session, True
            wait = 0.0
        # A TLS 1.3 NewSessionTicket follows the handshake: a non-blocking read consumes it
        # and then finds no application data.
        tls.setblocking(False)
        end = time.monotonic() + wait
        while time.monotonic() < end:
            select.select([tls], [], [], max(0.0, end - time.monotonic()))
            try:
                tls.recv(1)
            except ssl.SSLWantReadError:
                pass
            except (OSError, ssl.SSLError):
                break
            s = tls.session
            if s is not None and s.has_ticket and (got is None or s.id != got.id):
                got, fresh = s, True
                break
        try:
            tls.close()
        except OSError:
            pass
        return got, was_reused, fresh

    session, _, _ = connect(None, 0.5)
    # Servers that issue single-use tickets (a new one on every connection) need the client to
    # wait for the new ticket; servers whose ticket stays valid may send none after a resumed
    # handshake, and waiting would only slow the loop down. Wait until that is known.
    wait_for_ticket = True
    start = time.monotonic()
    while time.monotonic() - start < args.seconds:
        new, was_reused, fresh = connect(session, 0.05 if wait_for_ticket else 0.0)
        n += 1
        reused += bool(was_reused)
        if fresh:
            session = new
        elif was_reused:
            wait_for_ticket = False  # the old ticket still works
        else:
            wait_for_ticket = True  # not resumed: take the ticket of the next full handshake
    elapsed = time.monotonic() - start
    print(json.dumps({"connections": n, "reused": reused, "elapsed_s": round(elapsed, 3)}))
    return 0


def cpu_ticks(pids):
    """utime + stime of the processes (all their threads), in clock ticks; proc(5)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


class LoadConn(asyncio.Protocol):
    """One DoT connection: frames out, frames in, latency per answer."""

    def __init__(self, stats):
        self.stats = stats
        self.buf = b""
        self.sent = {}
        self.next_id = 0
        self.transport = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.stats["closed"] += 1
        if not self.closed.done():
            self.closed.set_result(exc)

    def send(self, wire):
        qid = self.next_id
        self.next_id = (self.next_id + 1) & 0xFFFF
        # wire = query with ID 0 behind its 2-byte length; put the ID in.
        self.sent[qid] = time.monotonic()
        self.transport.write(wire[:2] + struct.pack(">H", qid) + wire[4:])
        self.stats["sent"] += 1

    def data_received(self, data):
        self.buf += data
        now = time.monotonic()
        while len(self.buf) >= 2:
            (n,) = struct.unpack(">H", self.buf[:2])
            if len(self.buf) < 2 + n:
                break
            msg = self.buf[2:2 + n]
            self.buf = self.buf[2 + n:]
            if n < 4:
                continue
            (qid,) = struct.unpack(">H", msg[:2])
            t = self.sent.pop(qid, None)
            if t is None:
                continue
            if self.stats["counting"]:
                self.stats["answered"] += 1
                us = int((now - t) * 1e6)
                lat = self.stats["lat"]
                lat[us] = lat.get(us, 0) + 1


def percentile(counts, q):
    n = sum(counts.values())
    if not n:
        return None
    rank = max(1, -(-int(q * n * 1000) // 1000))
    seen = 0
    for k in sorted(counts):
        seen += counts[k]
        if seen >= rank:
            return k / 1000.0
    return None


async def load_async(args):
    wires = []
    with open(args.queries) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].upper() in QTYPES:
                wires.append(query(0, parts[0], QTYPES[parts[1].upper()]))
    if not wires:
        raise SystemExit("no usable queries in %s" % args.queries)
    ctx = context()
    loop = asyncio.get_running_loop()
    stats = {"sent": 0, "answered": 0, "closed": 0, "counting": False, "lat": {}}
    conns = []
    failed = 0
    sem = asyncio.Semaphore(args.parallel)

    async def open_one(i):
        nonlocal failed
        async with sem:
            try:
                _, proto = await asyncio.wait_for(
                    loop.create_connection(lambda: LoadConn(stats), HOST, args.port, ssl=ctx), args.timeout)
            except (OSError, asyncio.TimeoutError, ssl.SSLError):
                failed += 1
                return
            proto.send(wires[i % len(wires)])
            conns.append(proto)

    t_open = time.monotonic()
    await asyncio.gather(*(open_one(i) for i in range(args.conns)))
    # Wait for the first answers, then start counting from a quiet state.
    deadline = time.monotonic() + 10
    while any(c.sent for c in conns) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    open_s = time.monotonic() - t_open
    if not conns:
        print(json.dumps({"error": "no connection could be opened", "failed": failed}))
        return 1
    for c in conns:
        c.sent.clear()
    await asyncio.sleep(0.5)

    hz = os.sysconf("SC_CLK_TCK")
    s0, b0 = cpu_ticks(args.pids), cpu_ticks(args.backend_pids)
    stats["counting"] = True
    stats["sent"] = 0
    t0 = time.monotonic()
    k = 0
    rr = 0
    end = t0 + args.seconds
    error = ""
    while not error:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - t0) * args.rate)
        skipped = 0
        while k < due:
            c = conns[rr % len(conns)]
            rr += 1
            if c.transport.is_closing():
                # A connection the server closed: use the next one, unless none is left.
                skipped += 1
                if skipped >= len(conns):
                    error = "the server closed every connection"
                    break
                continue
            c.send(wires[k % len(wires)])
            k += 1
        await asyncio.sleep(0.001)
    t_send = time.monotonic()
    # Let the last answers in (at most --timeout), then close the window.
    deadline = time.monotonic() + args.timeout
    while stats["answered"] < stats["sent"] and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    t1 = time.monotonic()
    s1, b1 = cpu_ticks(args.pids), cpu_ticks(args.backend_pids)
    stats["counting"] = False
    for c in conns:
        c.transport.close()
    lat = stats["lat"]
    answered = stats["answered"]
    out = {
        "connections": len(conns), "failed": failed, "open_s": round(open_s, 2),
        "closed_early": stats["closed"], "sent": stats["sent"], "answered": answered,
        "lost": stats["sent"] - answered, "window_s": round(t1 - t0, 3),
        "send_s": round(t_send - t0, 3), "qps": round(answered / (t1 - t0), 1),
        "server_cpu_s": round((s1 - s0) / hz, 2), "backend_cpu_s": round((b1 - b0) / hz, 2),
        "avg_ms": round(sum(k * v for k, v in lat.items()) / answered / 1000, 3) if answered else None,
        "p50_ms": percentile(lat, 0.50), "p99_ms": percentile(lat, 0.99), "p999_ms": percentile(lat, 0.999),
    }
    if error:
        out["error"] = error
    print(json.dumps(out))
    await asyncio.sleep(0.2)
    return 0


def load(args):
    args.pids = [int(p) for p in args.pids.split()]
    args.backend_pids = [int(p) for p in args.backend_pid.split()]
    return asyncio.run(load_async(args))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--count", type=int, required=True)
    h.add_argument("--ready", required=True)
    h.add_argument("--first", type=int, default=0, help="index of the first name to ask for")
    h.add_argument("--names", type=int, default=30000, help="names in the zone (h00000...)")
    h.add_argument("--timeout", type=float, default=5.0)
    h.add_argument("--max-hold", type=float, default=900.0, help="give up holding after this long")
    h.add_argument("--h2", action="store_true", help="idle HTTP/2 connections (ALPN h2, SETTINGS exchanged)")
    u = sub.add_parser("doh-uris")
    u.add_argument("--queries", required=True, help="dnsperf data file: NAME TYPE per line")
    u.add_argument("--path", default="/dns-query")
    r = sub.add_parser("resume")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--seconds", type=float, default=2.0)
    r.add_argument("--tls", choices=["1.3", "1.2"], default="1.3")
    lo = sub.add_parser("load")
    lo.add_argument("--port", type=int, required=True)
    lo.add_argument("--conns", type=int, required=True)
    lo.add_argument("--rate", type=float, required=True, help="queries per second in all")
    lo.add_argument("--seconds", type=float, required=True)
    lo.add_argument("--queries", required=True, help="dnsperf data file: NAME TYPE per line")
    lo.add_argument("--pids", default="", help="server processes whose CPU time to count")
    lo.add_argument("--backend-pid", default="", help="backend processes whose CPU time to count")
    lo.add_argument("--parallel", type=int, default=100, help="handshakes in progress at once")
    lo.add_argument("--timeout", type=float, default=5.0)
    args = p.parse_args()
    return {"hold": hold, "resume": resume, "load": load, "doh-uris": doh_uris}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
