"""The detail exchange (docs/protocol.md §14): after a hit, the data a convenant allows.

``provider`` answers detail requests, polls and hit notices and carries out liaison
decisions; ``requester`` asks, polls, stores what it receives and purges it on time;
``source`` calls a partner's source system at request time. Their HTTP routes live in
``provider_routes`` and ``requester_routes``.
"""
