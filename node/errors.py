"""One error hierarchy for the whole node.

Every error carries a stable ``code``. The same code is the reason in a signed refusal
(docs/protocol.md §8), the last path segment of the problem+json ``type`` on HTTP, and
what the CLI prints. Protocol and crypto code raise these; only the HTTP layer (which
decides their statuses, ``node/http/statuses.py``) and the CLI turn them into responses.
"""

from __future__ import annotations

PROBLEM_TYPE_BASE = "https://vhnode.nl/problems/"


class VhnodeError(Exception):
    """Root of every error the node raises on purpose."""

    code = "error"
    title = "Internal error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title

    @property
    def problem_type(self) -> str:
        return PROBLEM_TYPE_BASE + self.code


# --- input and configuration -------------------------------------------------------


class InputError(VhnodeError):
    code = "invalid_input"
    title = "Invalid input"


class InvalidIdentifier(InputError):
    code = "invalid_identifier"
    title = "Invalid identifier"
    # The identifier's member the (first) problem is in, e.g. "postcode": an import names
    # the CSV column or JSON member with it. None when the identifier as a whole is wrong.
    field: str | None = None


class InvalidBsn(InvalidIdentifier):
    code = "invalid_bsn"
    title = "Invalid BSN"


class ConfigError(VhnodeError):
    code = "config_error"
    title = "Configuration error"


class NotFound(VhnodeError):
    code = "not_found"
    title = "Not found"


class Conflict(VhnodeError):
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(InputError):
    code = "payload_too_large"
    title = "Payload too large"


class RequestTimeout(InputError):
    code = "request_timeout"
    title = "The request body did not arrive in time"


class ClientAborted(InputError):
    code = "client_aborted"
    title = "The client closed the connection before its request arrived"


class DetailTooLarge(PayloadTooLarge):
    """A registration's detail text for one category is over the limit (protocol/registration)."""

    code = "detail_too_large"
    title = "Detail text too large"


class TooManyBadRequests(VhnodeError):
    """A source address sent more bad peer requests than its bucket holds (§12.1)."""

    code = "too_many_bad_requests"
    title = "Too many bad requests from this address"


# --- local authentication -----------------------------------------------------------


class AuthError(VhnodeError):
    code = "unauthorized"
    title = "Missing or invalid bearer token"


class Forbidden(AuthError):
    code = "forbidden"
    title = "Role not allowed"


# --- cryptography and signed documents ---------------------------------------------


class ProtocolError(VhnodeError):
    """A message or document that does not follow docs/protocol.md."""

    code = "protocol_error"
    title = "Protocol error"


class MalformedMessage(ProtocolError):
    code = "malformed_message"
    title = "Malformed message"


class BadSignature(ProtocolError):
    code = "bad_signature"
    title = "Bad signature"


class BadBinding(ProtocolError):
    """A signed answer that does not answer this request: another request's hash, or
    another partner or requester named (§6.8 step 3)."""

    code = "bad_binding"
    title = "Answer not bound to the request"


class BadTreeHead(ProtocolError):
    """The tree head an answer carries does not verify as its sender's (§9.3)."""

    code = "bad_tree_head"
    title = "Bad tree head"


class InvalidGroupElement(ProtocolError):
    code = "invalid_group_element"
    title = "Invalid group element"


class InvalidProof(ProtocolError):
    code = "invalid_proof"
    title = "DLEQ proof does not verify"


class KeyMismatch(ProtocolError):
    code = "key_mismatch"
    title = "Key differs from the one on record"


class ExpiredDocument(ProtocolError):
    code = "expired"
    title = "Document outside its validity window"


class InvalidTagSet(ProtocolError):
    code = "invalid_tag_set"
    title = "Tag set does not match its signed head"


class LogCorrupted(VhnodeError):
    code = "log_corrupted"
    title = "Log verification failed"


class RestorePending(LogCorrupted):
    """The database was restored from a backup and has not yet learned which heads its
    peers hold (docs/protocol.md §9.7): no new head is signed until it has."""

    code = "restore_pending"
    title = "Restored log waits for its restore check"


class DatabaseBusy(VhnodeError):
    """Another process held the database's write lock past the node's wait: nothing of
    the request was written; it can be sent again."""

    code = "busy"
    title = "Node busy"


DISK_FULL_DETAIL = (
    "disk full: the node database cannot grow (SQLite: database or disk is full); what was "
    "being written was rolled back. Free space on the node's disk (or raise [database] "
    "max_size_mib) and try again; an import can simply be run again"
)


class DiskFull(VhnodeError):
    """SQLite could not grow the node database (SQLITE_FULL: the disk is full, or the
    database reached ``[database] max_size_mib``). The transaction was rolled back."""

    code = "disk_full"
    title = "Disk full"


# --- policy refusals (signed, with a reason code; docs/protocol.md §8) --------------


class Refusal(VhnodeError):
    """A decision not to answer. Carried in a signed refusal, never as a bare HTTP error."""

    code = "refused"
    title = "Refused"


class UnknownRequester(Refusal):
    code = "unknown_requester"
    title = "Requester is not a known peer"


class RevokedRequester(Refusal):
    code = "revoked_requester"
    title = "Requester's peer card is revoked or expired"


class CardNotYetValid(Refusal):
    """A card whose ``valid_from`` (or ``issued_at``) lies ahead of this node's clock by
    more than the card skew (docs/protocol.md §4.1): a fresh card meets a slow clock.
    Its own code, so that the admin looks at a clock, not at a revocation list."""

    code = "card_not_yet_valid"
    title = "Peer card is not yet valid by this node's clock"


class UnknownConvenant(Refusal):
    code = "unknown_convenant"
    title = "Convenant is not installed at this node"


class ConvenantNotInForce(Refusal):
    code = "convenant_not_in_force"
    title = "Convenant is not in force"


class NotAParty(Refusal):
    code = "not_a_party"
    title = "Requester is not a party to the convenant"


class NotAProvider(Refusal):
    code = "not_a_provider"
    title = "This node provides no bekendheid under the convenant"


class NoQueryRight(Refusal):
    code = "no_query_right"
    title = "The convenant grants no bekendheid query for this purpose"


class PartyWithdrawn(Refusal):
    code = "party_withdrawn"
    title = "A party withdrew from the convenant"


class ReplayedRequest(Refusal):
    code = "replayed_request"
    title = "Request nonce was seen before"


class StaleRequest(Refusal):
    code = "stale_request"
    title = "Request timestamp outside the allowed clock skew"


class RateLimited(Refusal):
    code = "rate_limited"
    title = "Evaluation rate limit exceeded"


class TlsMismatch(Refusal):
    code = "tls_mismatch"
    title = "Request did not come over the TLS session its signer's card names"


class Misaddressed(Refusal):
    code = "misaddressed"
    title = "Request is addressed to another node"


class BadRequestSignature(Refusal):
    code = "bad_signature"
    title = "Request signature does not verify"


class UnusableElements(Refusal):
    code = "invalid_group_element"
    title = "A blinded element is not a valid group element"


class TooManySubjects(Refusal):
    code = "too_many_subjects"
    title = "Too many subjects in one request"


class RequesterTreeHeadBad(Refusal):
    """The tree head a request carries (docs/protocol.md §9.5) does not verify as a head
    of the requester: the partner cannot witness the requester's log, so it does not
    answer (fail closed)."""

    code = "bad_tree_head"
    title = "The request's tree head is not a signed head of the requester"


class RequesterLogForked(Refusal):
    """The requester's head in a request has another root than a head of the same size
    the partner holds (§9.5): the requester signed two logs. Both heads are evidence."""

    code = "forked_log"
    title = "The requester signed two different logs"


REFUSAL_CODES: tuple[str, ...] = tuple(
    cls.code
    for cls in (
        UnknownRequester,
        RevokedRequester,
        CardNotYetValid,
        UnknownConvenant,
        ConvenantNotInForce,
        NotAParty,
        NotAProvider,
        NoQueryRight,
        PartyWithdrawn,
        ReplayedRequest,
        StaleRequest,
        RateLimited,
        Misaddressed,
        BadRequestSignature,
        TlsMismatch,
        TooManySubjects,
        UnusableElements,
        RequesterTreeHeadBad,
        RequesterLogForked,
    )
)


UNAUTHENTICATED_CODES: frozenset[str] = frozenset(
    cls.code
    for cls in (
        UnknownRequester,
        RevokedRequester,
        CardNotYetValid,
        BadRequestSignature,
        TlsMismatch,
        Misaddressed,
        StaleRequest,
        ReplayedRequest,
    )
)
"""§6.6 steps 3–6: the request was not made by the claimed requester, to this node, now.
Refused before any write and counted per window, never logged one by one."""

# --- detail refusals (stage 2: detail requests; docs/protocol.md §7.4, §8.2) ---------
# Kept out of REFUSAL_CODES: those are the codes a bekendheid answer can carry, and a
# bekendheid partner must not start answering with codes of a stage it does not serve.


class CategoryNotInCatalogue(Refusal):
    code = "unknown_category"
    title = "Category is not in the convenant's catalogue"


class NoDetailRule(Refusal):
    code = "no_detail_rule"
    title = "The convenant lets this partner share nothing of this category"


class RecipientNotAllowed(Refusal):
    code = "recipient_not_allowed"
    title = "The requester is not a recipient of this category"


class RoleNotAllowed(Refusal):
    code = "role_not_allowed"
    title = "The requesting user's role may not see this category"


class PurposeNotAllowed(Refusal):
    code = "purpose_not_allowed"
    title = "The convenant shares this category for other purposes only"


DETAIL_REFUSAL_CODES: tuple[str, ...] = tuple(
    cls.code
    for cls in (
        ConvenantNotInForce,
        PartyWithdrawn,
        CategoryNotInCatalogue,
        NoDetailRule,
        RecipientNotAllowed,
        RoleNotAllowed,
        PurposeNotAllowed,
    )
)


# --- the detail exchange (docs/protocol.md §14) ---------------------------------------


class DuplicateRequest(Refusal):
    code = "duplicate_request"
    title = "This requester already used this trace id for a detail request"


class UnknownRound(Refusal):
    code = "unknown_round"
    title = "No bekendheid round of this requester under this convenant has that trace id"


class RoundPurposeMismatch(Refusal):
    code = "round_purpose_mismatch"
    title = "The round this request proves was asked under another purpose"


class UnknownSubject(Refusal):
    code = "unknown_subject"
    title = "The hit proof names no subject in scope of this node's tag set"


class BadHitProof(Refusal):
    code = "bad_hit_proof"
    title = "The hit proof is not this node's OPRF output for the subject"


class UnknownDetailRequest(Refusal):
    code = "unknown_request"
    title = "No detail request with this trace id"


class NoNoticeRule(Refusal):
    code = "no_notice_rule"
    title = "No detail rule of this partner asks for hit notices"


class AlreadyDecided(Conflict):
    code = "already_decided"
    title = "The category is not pending: it was decided already"


DETAIL_EXCHANGE_REFUSAL_CODES: tuple[str, ...] = tuple(
    cls.code
    for cls in (
        DuplicateRequest,
        UnknownRound,
        RoundPurposeMismatch,
        UnknownSubject,
        BadHitProof,
        UnknownDetailRequest,
        NoNoticeRule,
    )
)
"""Refusals of detail requests, polls and hit notices themselves (§14.3, §14.5, §14.9),
besides the §6.6 authentication codes and the convenant codes."""
