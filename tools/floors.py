"""What the machine allows before MAPI does anything: the floors the benches print beside their
figures, measured on the same machine in the same run.

    Echo          bare exchanges over a Unix socket, one per call of bench_server's control trip
    tls_ceiling   bytes per second of mutual TLS alone over loopback (bench_remote's stream)
    grpc_ceiling  bytes per second of a bare grpcio stream with mutual TLS over loopback: the
                  transport issue 11 prescribes, with no MAPI, ring or replay behind it
"""
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import time

ECHO = textwrap.dedent("""
    import os, socket, sys
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)     # as mapid's control threads
    except OSError:
        pass
    ls = socket.socket(socket.AF_UNIX)
    ls.bind(sys.argv[1])
    ls.listen(1)
    print("ready", flush=True)
    c, _ = ls.accept()
    while True:
        m = c.recv(4096)
        if not m:
            break
        c.sendall(m)
""")


class Echo:
    """The floor under a control round trip: a process that sends back what it gets over a
    Unix socket, at mapid's control priority, no MAPI in it.  trip(n) is n exchanges of 100
    bytes, as many as a control round trip's calls (4: create_flow + 2 apply + connect)."""

    def __init__(self, directory):
        path = os.path.join(directory, "echo.sock")
        self.proc = subprocess.Popen([sys.executable, "-c", ECHO, path], stdout=subprocess.PIPE,
                                     text=True)
        self.proc.stdout.readline()
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)

    def trip(self, exchanges=4):
        for _ in range(exchanges):
            self.sock.sendall(b"x" * 100)
            got = 0
            while got < 100:
                got += len(self.sock.recv(4096))

    def close(self):
        self.sock.close()
        self.proc.wait(10)


TLS_SENDER = textwrap.dedent("""
    import socket, ssl, sys
    total, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED                 # mutual TLS, as mapid's listener
    ls = socket.create_server(("127.0.0.1", 0))
    print(ls.getsockname()[1], flush=True)
    c = ctx.wrap_socket(ls.accept()[0], server_side=True)
    chunk = memoryview(bytes(range(256)) * (4 << 12))  # 4 MB writes, one span's worth
    sent = 0
    while sent < total:
        part = chunk[:total - sent]
        c.sendall(part)
        sent += len(part)
    c.close()
""")


def tls_ceiling(server, client, ca, total, runs):
    """Bytes per second that mutual TLS alone carries over loopback, between two processes (a
    sender writing 4 MB at a time, a receiver reading into one buffer): OpenSSL's encryption and
    decryption and the kernel's TCP, no MAPI, gRPC or ring.  server, client: (cert, key) paths
    signed by the CA at `ca`.  Best of `runs` transfers of `total` bytes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(*client)
    buf = memoryview(bytearray(4 << 20))
    best = 0.0
    for _ in range(runs):
        sender = subprocess.Popen([sys.executable, "-c", TLS_SENDER, str(total), server[0],
                                   server[1], ca], stdout=subprocess.PIPE, text=True)
        try:
            port = int(sender.stdout.readline())
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                                 server_hostname="127.0.0.1") as conn:
                got = 0
                t0 = time.perf_counter()
                while got < total:
                    n = conn.recv_into(buf)
                    if not n:
                        break
                    got += n
                best = max(best, got / (time.perf_counter() - t0))
            sender.wait(30)
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
    return best


GRPC_SENDER = textwrap.dedent("""
    import sys, threading, grpc
    from concurrent.futures import ThreadPoolExecutor
    total, cert, key, ca, size = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], \\
        int(sys.argv[5])
    message = bytes(range(256)) * (size // 256)        # built once: the stream only sends
    done = threading.Event()

    def stream(request, context):
        for _ in range(total // len(message)):
            yield message
        done.set()

    rd = lambda path: open(path, "rb").read()
    creds = grpc.ssl_server_credentials([(rd(key), rd(cert))], root_certificates=rd(ca),
                                        require_client_auth=True)   # mutual TLS, as mapid's
    server = grpc.server(ThreadPoolExecutor(4), options=[
        ("grpc.max_send_message_length", 64 << 20)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("floor", {
        "Stream": grpc.unary_stream_rpc_method_handler(stream)}),))
    print(server.add_secure_port("127.0.0.1:0", creds), flush=True)
    server.start()
    sys.stdin.read()                                    # until the bench closes our stdin
    server.stop(0)
""")


def grpc_ceiling(server, client, ca, total, runs, message_bytes=1 << 20, streams=1):
    """Bytes per second that grpcio with mutual TLS carries over loopback between two
    processes: a server process streaming one pre-built message of `message_bytes` over and
    over, this process reading the messages as bytes (no protobuf, no copy of ours) on
    `streams` channels at once (each its own TCP connection, read by a thread of its own).
    Best of `runs` transfers of `total` bytes in all."""
    import threading
    import grpc
    rd = lambda path: open(path, "rb").read()                        # noqa: E731
    creds = grpc.ssl_channel_credentials(root_certificates=rd(ca), private_key=rd(client[1]),
                                         certificate_chain=rd(client[0]))
    sender = subprocess.Popen([sys.executable, "-c", GRPC_SENDER, str(total // streams),
                               server[0], server[1], ca, str(message_bytes)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    best = 0.0
    try:
        port = int(sender.stdout.readline())
        channels = [grpc.secure_channel("127.0.0.1:%d" % port, creds, options=[
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.use_local_subchannel_pool", 1)])       # one TCP connection each
            for _ in range(streams)]
        calls = [c.unary_stream("/floor/Stream") for c in channels]
        for c in channels:
            grpc.channel_ready_future(c).result(timeout=30)
        for _ in range(runs):
            got = [0] * streams

            def read(i):
                for message in calls[i](b"", timeout=300):
                    got[i] += len(message)
            threads = [threading.Thread(target=read, args=(i,)) for i in range(streams)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            best = max(best, sum(got) / (time.perf_counter() - t0))
        for c in channels:
            c.close()
    finally:
        sender.stdin.close()
        try:
            sender.wait(30)
        except subprocess.TimeoutExpired:
            sender.kill()
            sender.wait()
    return best
