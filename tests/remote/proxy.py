"""A tiny TCP proxy for tests: what a load balancer does to a worker, moving its
connections from one server to another."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter


class Proxy:
    """Forwards every connection to 127.0.0.1:`target`; `switch` sends new connections to
    another port and cuts the open ones (as a balancer that drained a server does)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.served: Counter[int] = Counter()  # connections made to each target
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._closed = False
        self._cut_answers = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def switch(self, target: int) -> int:
        """Send new connections to `target`; cut the open ones. How many were still open."""
        with self._lock:
            self.target = target
            cut, self._open = self._open, []
        live = sum(sock.fileno() != -1 for sock in cut)
        for sock in cut:
            _shut(sock)
        return live // 2

    def close(self) -> None:
        self._closed = True
        _shut(self._listener)
        self.switch(self.target)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                target = self.target
            try:
                upstream = socket.create_connection(("127.0.0.1", target), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _shut(client)
                continue
            with self._lock:
                self.served[target] += 1
                self._open += [client, upstream]
            for src, dst, answers in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, answers), daemon=True).start()

    def cut_next_answer(self) -> None:
        """The next answer a server sends is dropped and its connection cut: the request
        was served, the client never hears of it (a network failure at the worst time)."""
        with self._lock:
            self._cut_answers += 1

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while data := src.recv(65536):
                if answers and self._cut_answers:
                    with self._lock:
                        self._cut_answers -= 1
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shut(src)
            _shut(dst)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
