"""The node's web application under ``/app/`` (docs/webapp.md).

Server-rendered pages in Dutch for the people the node exists for: the coordinator, the
liaison, the privacy officer and the admin. The same process, the same flows and the
same role decision as the local API (``node.http.plumbing.permits``); a session of its
own instead of bearer tokens. One module per concern: ``app`` builds it, ``sessions``
and ``csrf`` and ``headers`` guard it, ``signin`` and ``coordinator`` are pages.
"""
