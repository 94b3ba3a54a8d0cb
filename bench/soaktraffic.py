"""The traffic of bench/soak: client threads sending the mix, finance's routine, and what they saw.

They know nothing of the network's code, only its HTTP answers (SPEC.md).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import random
import threading
import time
from collections import Counter, defaultdict
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from bench.soakparts import socket_owner

AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


# ---- traffic -------------------------------------------------------------------------------------


@dataclasses.dataclass
class LinkRef:
    code: str
    offer: str  # "sale" (revshare + lead, no hold) or "held" (cpa, a hold, a daily cap)
    partner_id: int


@dataclasses.dataclass
class Sent:
    """A postback answered 200 for a new conversion: what was sent and the id it got."""

    offer: str
    event: str
    txn_id: str
    query: dict[str, str]
    conversion_id: int
    status: str


@dataclasses.dataclass
class Ledger:
    """What the clients saw, for the checks after the run (appended under `lock`)."""

    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    #: (answered at, click id, pid of the web worker that answered it or None when unknown)
    clicks: list[tuple[float, str, int | None]] = dataclasses.field(default_factory=list)
    new: list[Sent] = dataclasses.field(default_factory=list)
    replays: list[tuple[Sent, int]] = dataclasses.field(default_factory=list)  # (first, id the replay answered)
    conflicts: list[tuple[Sent, int]] = dataclasses.field(default_factory=list)  # (first, status answered)
    reversals: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)  # (id, by, answered status)
    reversible: list[Sent] = dataclasses.field(default_factory=list)
    counts: Counter[str] = dataclasses.field(default_factory=Counter)
    statuses: Counter[str] = dataclasses.field(default_factory=Counter)
    unexpected: list[str] = dataclasses.field(default_factory=list)
    latencies: dict[str, list[float]] = dataclasses.field(default_factory=lambda: defaultdict(list))

    def note(self, kind: str, status: int | str, seconds: float) -> None:
        with self.lock:
            self.counts[kind] += 1
            self.statuses[f"{kind} {status}"] += 1
            self.latencies[kind].append(seconds)

    def odd(self, text: str) -> None:
        with self.lock:
            self.unexpected.append(text)


class Client:
    """One keep-alive connection to the app that reconnects after a cut (a killed worker) or every 25 requests."""

    def __init__(self, base: str, workers: Any = None) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn: http.client.HTTPConnection | None = None
        self.used = 0
        #: () -> the web workers' pids: when given, the worker serving the connection is looked up.
        self.workers = workers
        #: The pid of the web worker that holds this connection (looked up after its first answer).
        self.owner: int | None = None

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: Any = None
    ) -> tuple[int, dict[str, str], bytes] | None:
        """Return (status, headers, body), or None when the connection was cut before an answer."""
        if self.conn is None or self.used >= 25:  # new connections now and then: they spread over workers
            self.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self.used = 0
            self.owner = None
        self.used += 1
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        all_headers = {"User-Agent": AGENT, **(headers or {})}
        if data is not None:
            all_headers.setdefault("Content-Type", "application/json")
        try:
            self.conn.request(method, path, body=data, headers=all_headers)
            response = self.conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            return None
        if self.used == 1 and self.workers is not None and self.conn.sock is not None:
            self.owner = socket_owner(self.port, self.conn.sock.getsockname()[1], self.workers())
        if (response.getheader("Connection") or "").lower() == "close":
            self.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, payload

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


#: The mix, as weights: what each client thread does next.
MIX = {
    "click": 50,
    "postback": 20,
    "replay": 7,
    "conflict": 2,
    "reverse_postback": 3,
    "reverse_api": 3,
    "read": 15,
}


class Traffic:
    """Client threads sending the mix at about `rate` requests/s in all, until stopped."""

    def __init__(
        self, base: str, setup: dict[str, Any], ledger: Ledger, *, rate: float, threads: int, workers: Any
    ) -> None:
        self.base = base
        self.workers = workers
        self.setup = setup
        self.ledger = ledger
        self.every = threads / rate
        self.threads = threads
        self.stop = threading.Event()
        self.links = [LinkRef(**link) for link in setup["links"]]
        self.recent: list[tuple[str, LinkRef]] = []  # clicks to convert: (click id, link)
        self.txn = 0
        self.lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.threads):
            thread = threading.Thread(target=self._loop, args=(i,), name=f"client-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(40)

    def _loop(self, index: int) -> None:
        client = Client(self.base, self.workers)
        rng = random.Random(index)
        kinds, weights = list(MIX), list(MIX.values())
        due = time.monotonic() + index * self.every / self.threads
        while not self.stop.is_set():
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            due = max(due + self.every, time.monotonic() - 1)
            kind = rng.choices(kinds, weights)[0]
            try:
                getattr(self, kind)(client, rng)
            except Exception as exc:  # a bug in the bench itself must not stop the traffic silently
                self.ledger.odd(f"{kind}: client error {exc!r}")
        client.close()

    def _send(
        self, client: Client, kind: str, method: str, path: str, **kwargs: Any
    ) -> tuple[int, dict[str, str], bytes] | None:
        started = time.monotonic()
        answer = client.request(method, path, **kwargs)
        self.ledger.note(kind, answer[0] if answer else "cut", time.monotonic() - started)
        return answer

    def _expect(self, kind: str, answer: tuple[int, dict[str, str], bytes] | None, *wanted: int) -> bool:
        if answer is None:
            return False  # cut by a kill: not answered, so nothing was promised
        if answer[0] not in wanted:
            self.ledger.odd(f"{kind}: {answer[0]} {answer[2][:200]!r}")
            return False
        return True

    # ---- the mix's requests --------------------------------------------------------------------

    def click(self, client: Client, rng: random.Random) -> None:
        link = rng.choice(self.links)
        # A visitor is its address and user agent: most clicks come from a new one (unique), one in
        # ten from a returning one (not unique: its conversions are held for review).
        visitor = rng.randrange(50) if rng.random() < 0.1 else rng.randrange(10**9)
        path = f"/c/{link.code}?sub1=soak&sub2={rng.randrange(100)}"
        answer = self._send(client, "click", "GET", path, headers={"User-Agent": f"{AGENT} visitor/{visitor}"})
        if not self._expect("click", answer, 302):
            return
        assert answer is not None
        cid = parse_qs(urlsplit(answer[1].get("location", "")).query).get("cid", [""])[0]
        if not cid:
            self.ledger.odd(f"click: no click id in {answer[1].get('location')!r}")
            return
        with self.ledger.lock:
            self.ledger.clicks.append((time.monotonic(), cid, client.owner))
        with self.lock:
            self.recent.append((cid, link))
            if len(self.recent) > 2000:
                del self.recent[:1000]

    def postback(self, client: Client, rng: random.Random) -> None:
        with self.lock:
            if not self.recent:
                return
            cid, link = self.recent.pop(rng.randrange(len(self.recent)))
            self.txn += 1
            txn = f"soak-{self.txn}"
        if link.offer == "sale" and rng.random() < 0.7:
            event, extra = "sale", {"amount": f"{rng.randrange(1000, 50000) / 100:.2f}"}
        elif link.offer == "sale":
            event, extra = "lead", {}
        else:
            event, extra = "purchase", {}
        query = {"click_id": cid, "event": event, "txn_id": txn, "token": self.setup["token"], **extra}
        answer = self._send(client, "postback", "GET", "/postback?" + urlencode(query))
        if not self._expect("postback", answer, 200):
            return
        assert answer is not None
        body = json.loads(answer[2])
        if body.get("duplicate") or not body.get("conversion_id"):
            self.ledger.odd(f"postback: a new txn_id answered {body}")
            return
        sent = Sent(link.offer, event, txn, query, int(body["conversion_id"]), body["status"])
        with self.ledger.lock:
            self.ledger.new.append(sent)
            if sent.status == "approved":
                self.ledger.reversible.append(sent)

    def _earlier(self, rng: random.Random) -> Sent | None:
        with self.ledger.lock:
            return rng.choice(self.ledger.new) if self.ledger.new else None

    def replay(self, client: Client, rng: random.Random) -> None:
        first = self._earlier(rng)
        if first is None:
            return
        answer = self._send(client, "replay", "GET", "/postback?" + urlencode(first.query))
        if self._expect("replay", answer, 200):
            assert answer is not None
            body = json.loads(answer[2])
            with self.ledger.lock:
                self.ledger.replays.append((first, int(body.get("conversion_id") or 0)))

    def conflict(self, client: Client, rng: random.Random) -> None:
        first = self._earlier(rng)
        if first is None or "amount" not in first.query:
            return
        query = {**first.query, "amount": f"{float(first.query['amount']) + 1:.2f}"}
        answer = self._send(client, "conflict", "GET", "/postback?" + urlencode(query))
        if self._expect("conflict", answer, 409):
            with self.ledger.lock:
                self.ledger.conflicts.append((first, 409))

    def _reversible(self, rng: random.Random) -> Sent | None:
        with self.ledger.lock:
            pool = self.ledger.reversible
            return pool.pop(rng.randrange(len(pool))) if pool else None

    def reverse_postback(self, client: Client, rng: random.Random) -> None:
        target = self._reversible(rng)
        if target is None:
            return
        query = {"txn_id": target.txn_id, "event": target.event, "status": "reversed", "token": self.setup["token"]}
        answer = self._send(client, "reverse_postback", "GET", "/postback?" + urlencode(query))
        if self._expect("reverse_postback", answer, 200):
            assert answer is not None
            status = json.loads(answer[2]).get("status", "")
            with self.ledger.lock:
                self.ledger.reversals.append((target.conversion_id, "postback", status))

    def reverse_api(self, client: Client, rng: random.Random) -> None:
        target = self._reversible(rng)
        if target is None:
            return
        path = f"/api/v1/conversions/{target.conversion_id}/status"
        body = {"status": "reversed", "reason": "refund"}
        answer = self._send(client, "reverse_api", "POST", path, headers=self._auth("brand"), body=body)
        if self._expect("reverse_api", answer, 200):
            assert answer is not None
            status = json.loads(answer[2]).get("status", "")
            with self.ledger.lock:
                self.ledger.reversals.append((target.conversion_id, "api", status))

    def _auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.setup['keys'][role]}"}

    def read(self, client: Client, rng: random.Random) -> None:
        partner = rng.choice(self.setup["partners"])
        reads = [
            ("brand", "/api/v1/reports?group_by=day,offer,partner"),
            ("brand", "/api/v1/conversions?limit=50"),
            ("brand", f"/api/v1/conversions?offer_id={self.setup['offers']['sale']}&status=approved"),
            ("admin", f"/api/v1/partners/{partner['id']}/balance"),
            ("finance", "/api/v1/payouts?status=paid"),
            ("admin", "/api/v1/postback-deliveries?status=delivered"),
        ]
        role, path = rng.choice(reads)
        answer = self._send(client, "read", "GET", path, headers=self._auth(role))
        self._expect(f"read {path}", answer, 200)


class Finance:
    """Finance's routine: every `every` s approve the payouts pending approval (and cancel every 7th)."""

    def __init__(self, base: str, key: str, ledger: Ledger, every: float = 2.0) -> None:
        self.client = Client(base)
        self.headers = {"Authorization": f"Bearer {key}"}
        self.ledger = ledger
        self.every = every
        self.decided: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="finance", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self) -> None:
        self.stop.set()
        self.thread.join(30)

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            self.decide()
        self.client.close()

    def decide(self, *, close: bool = False) -> None:
        """Approve (or cancel) every payout pending approval now (then close the connection if `close`)."""
        try:
            self._decide()
        finally:
            if close:
                self.client.close()

    def _decide(self) -> None:
        answer = self.client.request("GET", "/api/v1/payouts?status=pending_approval&limit=100", headers=self.headers)
        if answer is None:
            return
        if answer[0] != 200:
            self.ledger.odd(f"finance list: {answer[0]} {answer[2][:200]!r}")
            return
        for item in json.loads(answer[2])["items"]:
            action = "cancel" if item["id"] % 7 == 0 else "approve"
            done = self.client.request("POST", f"/api/v1/payouts/{item['id']}/{action}", headers=self.headers)
            if done is None:
                continue
            if done[0] == 200:
                self.decided[action] += 1
            elif done[0] != 409:  # 409: the other scheduler's or our own earlier answer changed it first
                self.ledger.odd(f"finance {action}: {done[0]} {done[2][:200]!r}")
