"""A tiny IMAP server on 127.0.0.1 speaking just what ``ImapSource`` sends through imaplib.

CAPABILITY, LOGIN, SELECT, UID SEARCH UNSEEN, UID FETCH (BODY.PEEK[]), UID STORE
+FLAGS (\\Seen), LOGOUT: enough to prove the real ``imaplib`` client parses our
answers and that flags change only on STORE. Not an IMAP implementation.
"""

from __future__ import annotations

import socketserver
import threading


class FakeImap:
    """``with FakeImap({"7": raw}) as server:`` → ``server.port``, ``server.seen``."""

    def __init__(self, messages: dict[str, bytes], password: str = "secret") -> None:
        self.messages, self.password = messages, password
        self.seen: set[str] = set()
        self.commands: list[str] = []
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(b"* OK fake IMAP ready\r\n")
                for line in self.rfile:
                    tag, _, rest = line.decode().strip().partition(" ")
                    if not fake._answer(self.wfile, tag, rest):
                        break

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def _answer(self, out, tag: str, rest: str) -> bool:
        words = rest.split()
        command = " ".join(words[:2]).upper() if words[0].upper() == "UID" else words[0].upper()
        self.commands.append(command)
        if command == "CAPABILITY":
            out.write(b"* CAPABILITY IMAP4rev1\r\n")
        elif command == "LOGIN" and words[2].strip('"') != self.password:
            out.write(f"{tag} NO bad password\r\n".encode())
            return True
        elif command == "SELECT":
            out.write(f"* {len(self.messages)} EXISTS\r\n".encode())
        elif command == "UID SEARCH":
            unseen = " ".join(u for u in self.messages if u not in self.seen)
            out.write(f"* SEARCH {unseen}\r\n".encode())
        elif command == "UID FETCH":
            raw = self.messages[words[2]]
            out.write(f"* 1 FETCH (UID {words[2]} BODY[] {{{len(raw)}}}\r\n".encode() + raw + b")\r\n")
        elif command == "UID STORE":
            self.seen.add(words[2])
            out.write(f"* 1 FETCH (UID {words[2]} FLAGS (\\Seen))\r\n".encode())
        elif command == "LOGOUT":
            out.write(f"* BYE\r\n{tag} OK bye\r\n".encode())
            return False
        out.write(f"{tag} OK done\r\n".encode())
        return True

    def __enter__(self) -> "FakeImap":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
