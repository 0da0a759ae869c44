"""The domain of Lämpiö Live: shows, codes, lobbies, chat, reactions and the bus they share.

Nothing here knows of HTTP or WebRTC; signaling/ and media/ use this package, never the reverse.
"""
