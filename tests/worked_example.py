"""Appendix A of docs/protocol.md, generated from one real run so that it cannot drift.

Four real nodes (tests/federation.py) on 127.0.0.1; a recorder sits on politie-test's
port and keeps every request and answer as they crossed the wire, headers included. The
appendix is rendered from what it recorded and from the partner's own log.

    python -m tests.worked_example            # print the appendix
    python -m tests.worked_example --write    # replace it in docs/protocol.md

tests/test_worked_example.py fails when the committed appendix no longer has the shape of
a fresh run (``shape``: every random value, time and number aside, the text is equal).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from node.http.app import make_app
from node.protocol import jws
from tests.federation import (
    DEFAULT_PARTIES,
    OTHER_PURPOSE,
    PURPOSE,
    Federation,
    bound_socket,
    convenant_toml,
)

PROTOCOL_MD = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
BEGIN = "## Appendix A. Worked example"
END = "## Appendix B."
CASE_REF = "CASUS-2026-001"
BSN = {"kind": "bsn", "bsn": "123456782"}
PERSON = {
    "kind": "person",
    "surname": "Berg",
    "tussenvoegsel": "van der",
    "first_names": "Jan",
    "birth_date": "1990-01-31",
}


@dataclass(frozen=True)
class Exchange:
    """One HTTP exchange as it crossed the wire."""

    path: str
    request_type: str
    request: bytes
    status: int
    answer_type: str
    answer: bytes

    def request_json(self) -> Any:
        return json.loads(self.request)

    def answer_json(self) -> Any:
        return json.loads(self.answer)


@dataclass
class Recorder:
    """In front of a node: passes every request on and keeps both sides."""

    target: str
    exchanges: list[Exchange] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with (
            aiohttp.ClientSession() as s,
            s.request(
                request.method,
                self.target + request.path,
                data=body,
                headers={k: v for k, v in request.headers.items() if k == "Content-Type"},
            ) as resp,
        ):
            answer = await resp.read()
            status, ctype = resp.status, resp.headers.get("Content-Type", "")
        self.exchanges.append(
            Exchange(
                request.path, request.headers.get("Content-Type", ""), body, status, ctype, answer
            )
        )
        return web.Response(status=status, body=answer, headers={"Content-Type": ctype})


@dataclass(frozen=True)
class Run:
    evaluate: Exchange
    tag_set: Exchange
    refusal: Exchange
    result: dict[str, Any]
    refusal_entry: str
    cards: dict[str, dict[str, Any]]


async def _record(fed: Federation, node_id: str) -> Recorder:
    """Move the node to another port and put a recorder on its own."""
    node = fed.nodes[node_id]
    await fed.stop(node_id)
    inner_sock = bound_socket()
    inner_port = int(inner_sock.getsockname()[1])
    node.runner = web.AppRunner(make_app(node.ctx), access_log=None)
    await node.runner.setup()
    await web.SockSite(node.runner, inner_sock).start()
    recorder = Recorder(f"http://127.0.0.1:{inner_port}")
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", node.port).start()
    fed.__dict__.setdefault("_extra_runners", []).append(runner)
    return recorder


async def capture(root: Path) -> Run:
    fed = Federation(root)
    try:
        for node_id, org_type, _, _ in DEFAULT_PARTIES:
            fed.add_node(node_id, org_type)
        fed.exchange_cards()
        fed.sign_and_install(convenant_toml(DEFAULT_PARTIES))
        fed.register(
            "politie-test", {"ref": "BPS-1", "themes": ["veelplegers"], "identifiers": [BSN]}
        )
        await fed.start()
        recorder = await _record(fed, "politie-test")
        result = await fed.query(
            "vh-test", [BSN, PERSON], case_ref=CASE_REF, partners=["politie-test"]
        )
        refused = await fed.query(
            "vh-test", [BSN], purpose=OTHER_PURPOSE, case_ref=CASE_REF, partners=["politie-test"]
        )
        assert refused["partners"][0]["reason"] == "no_query_right", refused
        paths = [e.path for e in recorder.exchanges]
        assert paths == ["/peer/v1/evaluate", "/peer/v1/tag-set", "/peer/v1/evaluate"], paths
        evaluate, tag_set, refusal = recorder.exchanges
        politie = fed.nodes["politie-test"]
        trace_id = jws.parse(refusal.answer_json()).payload["trace_id"]
        (entry,) = politie.ctx.conn.execute(
            "SELECT body FROM log_entries WHERE kind = 'bekendheid.refused' AND trace_id = ?",
            (trace_id,),
        ).fetchall()
        cards = {
            n: jws.parse(fed.nodes[n].card_json()).payload for n in ("vh-test", "politie-test")
        }
        return Run(evaluate, tag_set, refusal, result, str(entry[0]), cards)
    finally:
        await fed.close()


# --- rendering ---------------------------------------------------------------------------


def _indented(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _block(value: Any) -> str:
    return f"```json\n{_indented(value)}\n```"


def _payload(doc_json: Any) -> dict[str, Any]:
    return jws.parse(doc_json).payload


def _header(doc_json: Any) -> str:
    protected = doc_json["signatures"][0]["protected"]
    return jws.b64u_decode(protected).decode()


def render(run: Run) -> str:
    request = run.evaluate.request_json()
    request_payload = _payload(request)
    answer = _payload(run.evaluate.answer_json())
    head = _payload(answer["tree_head"])
    tag_request = _payload(run.tag_set.request_json())
    tag_answer = _payload(run.tag_set.answer_json())
    tag = jws.b64u_decode(tag_answer["added"])
    assert len(tag) == 16, "the prose below describes a set of one tag"
    bucket = tag[0]
    refusal = _payload(run.refusal.answer_json())
    refusal_request = _payload(run.refusal.request_json())
    refusal_head = _payload(refusal["tree_head"])
    entry = json.loads(run.refusal_entry)
    vh, politie = run.cards["vh-test"], run.cards["politie-test"]
    request_hash = jws.b64u_encode(hashlib.sha256(jws.b64u_decode(request["payload"])).digest())
    assert answer["request_hash"] == request_hash
    assert entry["trace_id"] == refusal["trace_id"] == refusal_request["trace_id"]
    assert refusal_head["tree_size"] > entry["seq"]
    subjects = run.result["partners"][0]["subjects"]
    first_is_tag = subjects[0] == "hit"

    return f"""{BEGIN}

*Informative.* One real run of four nodes (`tests/federation.py`), as the messages crossed
the wire, complete: every signature below verifies under the keys shown. Generated by
`python -m tests.worked_example --write`; `tests/test_worked_example.py` fails when this
text no longer has the shape of a fresh run.

`politie-test` has registration `BPS-1` with theme `veelplegers` and identifier
`{{"kind": "bsn", "bsn": "123456782"}}`. The coordinator of `vh-test` asks about two
subjects, that BSN and `{{"kind": "person", "surname": "Berg", "tussenvoegsel": "van der",
"first_names": "Jan", "birth_date": "1990-01-31"}}` (subject keys `bsn:123456782` and
`person:berg|j|1990-01-31`), of `politie-test` only. The signing keys of the run (from
the peer cards, §4.1): `vh-test` `{vh["signing_key"]}`, `politie-test`
`{politie["signing_key"]}`.

**Evaluate request** as sent (`POST /peer/v1/evaluate`, `Content-Type:
{run.evaluate.request_type}`):

{_block(request)}

The protected header decodes to `{_header(request)}` and the payload (shown indented; on
the wire it is JCS: no whitespace, members sorted) to:

{_block(request_payload)}

**Evaluate response** (HTTP {run.evaluate.status}, `Content-Type: {run.evaluate.answer_type}`),
payload (`request_hash` is `B64U(SHA256(payload bytes))` of the request above, §3.5):

{_block(answer)}

Its `tree_head` (§9.3) decodes to the payload below: politie-test's log after it recorded
this very answer. `vh-test` verifies it under politie-test's key and keeps it for later
cross-checks (§9.4).

{_block(head)}

`vh-test` held no copy of this tag set, so it sends a **tag-set request** with
`since_version` 0 (`POST /peer/v1/tag-set`), payload:

{_block(tag_request)}

**Tag-set response** (HTTP {run.tag_set.status}, `Content-Type: {run.tag_set.answer_type}`), a
full set of one tag, payload:

{_block(tag_answer)}

The head's digest is that of the one-tag set (§6.4): the tag's first byte is {bucket}, so
the digest is `SHA256` of {bucket} × `SHA256("")`, then `SHA256(B64U-decode(added))`, then
{255 - bucket} × `SHA256("")`. The {"first" if first_is_tag else "second"} subject's tag
equals the one tag (`hit`), the {"second" if first_is_tag else "first"}'s does not
(`no_hit`); the local API answers (api.md):

{_block(run.result)}

**A signed refusal.** The same coordinator asks about the BSN for purpose
`{OTHER_PURPOSE}`, which the convenant does not grant `vh-test` (it grants
`{PURPOSE}`). `politie-test` answers HTTP {run.refusal.status} (`Content-Type:
{run.refusal.answer_type}`) with this payload (`typ` `vhnode-evaluate-response/v1`). Like
every refusal of an authenticated request it carries the tree head that covers its own
log entry (§6.6 step 11):

{_block(refusal)}

The partner logged this entry for it (the body as stored and hashed, JCS, §9.1; the
`trace_id` is the request's):

```json
{run.refusal_entry}
```

and the refusal's `tree_head` has this payload (`typ` `vhnode-tree-head/v1`): the log up
to and including that entry.

{_block(refusal_head)}

---

"""


# --- comparing shapes --------------------------------------------------------------------

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_RANDOM = re.compile(r"[A-Za-z0-9_-]{16,}")
_NUMBER = re.compile(r"\d+")


def shape(text: str) -> str:
    """The text with what differs from run to run replaced: times, base64url and hex
    values (16 or more characters with a digit or a capital), and numbers."""
    text = _TIME.sub("<time>", text)
    text = _RANDOM.sub(
        lambda m: "<value>" if re.search(r"[0-9A-Z]", m.group()) else m.group(), text
    )
    return _NUMBER.sub("<n>", text)


def committed(path: Path = PROTOCOL_MD) -> str:
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END)
    return text[start:end]


def write(appendix: str, path: Path = PROTOCOL_MD) -> None:
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END)
    path.write_text(text[:start] + appendix + text[end:], encoding="utf-8")


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as root:
        appendix = render(asyncio.run(capture(Path(root))))
    if "--write" in argv:
        write(appendix)
    else:
        sys.stdout.write(appendix)


if __name__ == "__main__":
    main(sys.argv[1:])
