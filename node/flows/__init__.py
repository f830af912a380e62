"""The flows: asking, answering, tag-set publication, detail exchange, audit, admin.

Each combines the pure layers (protocol, policy) with the store; none speaks HTTP.
"""
