"""A round-robin TCP load balancer on 127.0.0.1: one address in front of several bot
replicas, as a PaaS router would put them."""

from __future__ import annotations

import itertools
import socket
import threading


class Balancer:
    def __init__(self, backends: list[int]) -> None:
        self._backends = itertools.cycle(backends)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False

    def start(self) -> Balancer:
        threading.Thread(target=self._accept, name="balancer", daemon=True).start()
        return self

    def stop(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                port = next(self._backends)
            threading.Thread(target=self._serve, args=(client, port), daemon=True).start()

    def _serve(self, client: socket.socket, port: int) -> None:
        with client, socket.create_connection(("127.0.0.1", port)) as upstream:
            forward = threading.Thread(target=_pipe, args=(client, upstream), daemon=True)
            forward.start()
            _pipe(upstream, client)
            forward.join(timeout=5)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass
