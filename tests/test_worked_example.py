"""Appendix A of docs/protocol.md is one real run, and still what the code produces.

The appendix is generated (``python -m tests.worked_example --write``). The first test
runs the same federation again and compares the texts with every random value, time and
number masked: a new member, a missing ``tree_head``, a changed media type or status, a
log entry of another kind shows up as a difference. The second checks the committed
text on its own: its signatures verify under the keys it shows, the response names the
request shown, and the log entry is the one of the refusal shown.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from node.protocol import jws
from node.protocol.tree_head import TREE_HEAD_TYP
from tests import worked_example

EVALUATE_REQUEST_TYP = "vhnode-evaluate-request/v1"


async def test_appendix_a_has_the_shape_of_a_fresh_run(tmp_path: Path) -> None:
    fresh = worked_example.shape(worked_example.render(await worked_example.capture(tmp_path)))
    held = worked_example.shape(worked_example.committed())
    diff = "\n".join(difflib.unified_diff(held.splitlines(), fresh.splitlines(), lineterm=""))
    assert fresh == held, (
        "docs/protocol.md Appendix A differs from a fresh run; regenerate it with "
        "'python -m tests.worked_example --write' and read the diff:\n" + diff
    )


def _blocks(text: str) -> list[Any]:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", text, re.S)]


def _key(text: str, node_id: str) -> bytes:
    match = re.search(rf"`{node_id}`\s+`([A-Za-z0-9_-]{{43}})`", text)
    assert match, f"no signing key of {node_id} in the appendix"
    return jws.b64u_decode(match.group(1))


def _verified(doc_json: Any, typ: str, key: bytes) -> dict[str, Any]:
    doc = jws.parse(doc_json, typ)
    doc.verify(jws.fingerprint(key), key)
    return doc.payload


def test_appendix_a_is_one_exchange_that_verifies() -> None:
    text = worked_example.committed()
    vh, politie = _key(text, "vh-test"), _key(text, "politie-test")
    (
        request,
        request_payload,
        answer,
        head,
        tag_request,
        tag_answer,
        result,
        refusal,
        entry,
        refusal_head,
    ) = _blocks(text)
    assert _verified(request, EVALUATE_REQUEST_TYP, vh) == request_payload
    payload_bytes = jws.b64u_decode(request["payload"])
    assert answer["request_hash"] == jws.b64u_encode(hashlib.sha256(payload_bytes).digest())
    assert answer["trace_id"] == request_payload["trace_id"] == result["trace_id"]
    assert _verified(answer["tree_head"], TREE_HEAD_TYP, politie) == head
    assert _verified(tag_answer["tree_head"], TREE_HEAD_TYP, politie)["node"] == "politie-test"
    assert tag_request["since_version"] == 0
    assert tag_answer["head"] == answer["tag_set"]
    # The refusal carries the tree head that covers its own log entry, and the entry
    # shown is that refusal's: same trace, reason and counterparty.
    assert refusal["outcome"] == "refused"
    assert _verified(refusal["tree_head"], TREE_HEAD_TYP, politie) == refusal_head
    assert entry["kind"] == "bekendheid.refused"
    assert (entry["trace_id"], entry["reason"]) == (refusal["trace_id"], refusal["reason"])
    assert entry["counterparty"] == refusal["requester"] == "vh-test"
    assert entry["node"] == refusal_head["node"] == "politie-test"
    assert refusal_head["tree_size"] > entry["seq"]


def test_appendix_a_media_types_are_those_of_section_12_1() -> None:
    text = worked_example.committed()
    section = text  # the appendix states what was sent; §12.1 must say the same
    spec = worked_example.PROTOCOL_MD.read_text(encoding="utf-8")
    http = spec[spec.index("### 12.1 Peer endpoints") : spec.index("### 12.2")]
    for media_type in set(re.findall(r"Content-Type:\s+([a-z/+]+(?:; charset=utf-8)?)", section)):
        assert f"`{media_type}`" in http or f"`Content-Type: {media_type}`" in http, media_type
