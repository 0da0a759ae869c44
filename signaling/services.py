"""Everything the endpoints use, in one frozen object built once per app (``create_app``) and
handed to every command handler; HTTP handlers reach it with :func:`services`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from media.cameras import Cameras
from media.stage import Stage
from media.voice import Voices
from rooms.bus import Bus
from rooms.chat import Chat
from rooms.foyer import AudienceCounter, Foyer
from rooms.insight import Insight
from rooms.lobbies import Lobbies
from rooms.nodes import NodeRegistry
from rooms.organisers import Organisers
from rooms.ratelimit import FailureLimiter
from rooms.reactions import ReactionTally
from rooms.recordings import Recordings
from rooms.relay import EventRelay
from rooms.screens import Screens
from rooms.shows import Shows
from rooms.tickets import Tickets
from rooms.voice import VoiceRules, VoiceStates
from signaling.metrics import Metrics
from signaling.state import Lifecycle, Site

if TYPE_CHECKING:
    from signaling.cluster import Cascade
    from signaling.commands import Commands
    from signaling.connection import Connection
    from signaling.whip import HttpSession


@dataclass(frozen=True, slots=True)
class Limiters:
    """Limits on guessing, each per kind of secret (see docs/architecture.md, rate limits)."""

    code: FailureLimiter  # audience codes, per address
    lobby_code: FailureLimiter  # friends' (lobby) codes, per address
    organiser_key: FailureLimiter  # organiser keys over HTTP
    show_token: FailureLimiter  # performer tokens (or organiser keys) for one show over HTTP
    stream_key: FailureLimiter  # stream keys (WHIP)
    pairing: FailureLimiter  # pairing codes, per address and per staff key
    staff_key: FailureLimiter  # staff keys, per address
    new_pairing: FailureLimiter  # pairing codes handed out, per address


@dataclass(frozen=True, slots=True)
class Services:
    """The node's domain, media and wiring, shared by every endpoint."""

    site: Site
    metrics: Metrics
    lifecycle: Lifecycle
    bus: Bus
    relay: EventRelay
    shows: Shows
    organisers: Organisers
    tickets: Tickets
    recordings: Recordings
    insight: Insight
    lobbies: Lobbies
    chat: Chat
    foyer: Foyer
    audience: AudienceCounter
    tally: ReactionTally
    voice_rules: VoiceRules
    voice_states: VoiceStates
    screens: Screens
    stage: Stage
    voices: Voices
    cameras: Cameras
    nodes: NodeRegistry
    limiters: Limiters
    cascade: Cascade
    commands: Commands
    connections: set[Connection]
    whip_sessions: dict[str, HttpSession]
    whep_sessions: dict[str, HttpSession]
    sockets_per_address: Counter[str] = field(default_factory=Counter)
    rtmp_port: int | None = None

    @property
    def node_id(self) -> str:
        """This node's id in the registry (new for every process)."""
        return self.nodes.node_id


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    """The app's services, for an HTTP handler."""
    return request.app[SERVICES]
