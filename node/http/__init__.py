"""The HTTP layer: app, middlewares, peer and local API routes, peer client, server."""
