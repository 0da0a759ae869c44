"""What a WebSocket connection is for, one typed role each: a viewer seated in a lobby, the show's
performer (or a host), a care-home screen, a staff member's phone. A connection may have more than
one (a screen also watches as a viewer); each role owns what it holds and releases it when it ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rooms.captions import CAPTION_BURST, CAPTION_RATE
from rooms.errors import Forbidden, InvalidInput
from rooms.ratelimit import TokenBucket
from rooms.reactions import BURST, RATE
from signaling.connection import Connection, Role

if TYPE_CHECKING:
    from media.cameras import CameraSeat
    from media.stage import ViewerSession
    from media.voice import VoiceSeat
    from rooms.lobbies import Lobby, Member

CHAT_RATE, CHAT_BURST = 1.0, 5


class Speaking(Role):
    """A role that may have a lobby voice seat (a viewer's, or the performer listening)."""

    def __init__(self, conn: Connection, show_id: str) -> None:
        super().__init__(conn)
        self.show_id = show_id
        self.voice: VoiceSeat | None = None
        self.camera: CameraSeat | None = None  # the foyer's cameras, or the performer's wall


class Viewer(Speaking):
    """A member seated in a lobby of a show: chat, reactions, the broadcast, the lobby voice."""

    def __init__(self, conn: Connection, show_id: str, lobby: Lobby, member: Member) -> None:
        super().__init__(conn, show_id)
        self.lobby = lobby
        self.member = member
        self.session: ViewerSession | None = None
        self.video = True  # the picture too, or the sound alone (watch.quality)
        self.picture = "auto"  # auto, best or low (watch.quality)
        self.chat_bucket = TokenBucket(CHAT_RATE, CHAT_BURST)
        self.reaction_bucket = TokenBucket(RATE, BURST)


class Performer(Speaking):
    """The show's performer or a host: the audience, all chat, moderation, captions."""

    def __init__(self, conn: Connection, show_id: str) -> None:
        super().__init__(conn, show_id)
        self.caption_bucket = TokenBucket(CAPTION_RATE, CAPTION_BURST)


class Screen(Role):
    """A care-home screen: paired (or showing its pairing code) and following its events."""

    def __init__(self, conn: Connection, screen_id: str) -> None:
        super().__init__(conn)
        self.screen_id = screen_id


class Phone(Role):
    """A staff member's phone, the remote of the screens their staff key paired."""

    def __init__(self, conn: Connection, staff_key: str) -> None:
        super().__init__(conn)
        self.staff_key = staff_key


def speaking(conn: Connection) -> Speaking:
    """The role whose lobby voice or cameras these are: the viewer's seat, else the performer's
    (listening to the stage, or watching the audience wall); InvalidInput without either."""
    role: Speaking | None = conn.role(Viewer) or conn.role(Performer)
    if role is None:
        raise InvalidInput("join a show first (watch.join)")
    return role


def viewer(conn: Connection) -> Viewer:
    """The connection's viewer role; InvalidInput if it has not joined a show."""
    found = conn.role(Viewer)
    if found is None:
        raise InvalidInput("join a show first (watch.join)")
    return found


def performer(conn: Connection) -> Performer:
    """The connection's performer role; Forbidden if it performs or hosts no show."""
    found = conn.role(Performer)
    if found is None:
        raise Forbidden("only the show's performer may do this")
    return found
