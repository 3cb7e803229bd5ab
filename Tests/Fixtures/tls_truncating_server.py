#!/usr/bin/env python3
"""A hostile HTTPS server for portsync's tests, on 127.0.0.1: for each connection it does the TLS
handshake, reads the request's header section, answers with a body delimited by the connection's
end (no Content-Length, no chunking) and then closes the TCP connection with a bare FIN, without
TLS close_notify, as a cut connection looks. Prints "ready" once it listens."""
import argparse
import socket
import ssl


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--body", required=True)
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    listener = socket.create_server(("127.0.0.1", args.port))
    print("ready", flush=True)
    while True:
        raw, _ = listener.accept()
        raw.settimeout(10)
        try:
            tls = context.wrap_socket(raw, server_side=True)
            request = b""
            while b"\r\n\r\n" not in request:
                data = tls.recv(4096)
                if not data:
                    break
                request += data
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" + args.body.encode())
            # SSLSocket.shutdown drops the TLS layer and shuts the TCP socket down: the FIN goes
            # out with no close_notify before it. Then whatever the client sends is read to its
            # end, so that the close is no reset.
            tls.shutdown(socket.SHUT_WR)
            while socket.socket.recv(tls, 4096):
                pass
            tls.close()
        except (OSError, ssl.SSLError):
            raw.close()


if __name__ == "__main__":
    main()
