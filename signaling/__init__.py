"""The edges of Lämpiö Live: HTTP API, WebSocket protocol and (later) WHIP/WHEP endpoints."""
