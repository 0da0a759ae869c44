"""Tickets: digit codes that open a ticketed show, one seat at a time.

A ticket is 16 digits, typed on the same keypad as a show's six-digit code and shown in fours
(``1234 5678 9012 3456``, like a payment card). Only its digest is stored: the organiser gets
the codes once, when they are minted. Guessing one is hopeless under the per-address limit on
codes (5 wrong in 15 minutes): 1,000 addresses guessing for a week make 3.4 million guesses;
with 10,000 tickets outstanding, each guess finds one with odds 10⁴ / 10¹⁶, so all of them
together with odds of about 3 in a million (docs/api.md).

A ticket for a care-home room carries the room's head count. A second device with the same
ticket takes its seat over: the first is told and let go (``ticketseat:`` remembers who holds
it).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from rooms.bus import Bus
from rooms.errors import Forbidden, InvalidInput
from rooms.organisers import clean_text

TICKET_DIGITS = 16
MINT_MAX = 500  # tickets in one request (a concert hall's worth; ask again for more)
LABEL_MAX = 100
HEAD_COUNT_MAX = 200
TICKET_TTL = 400 * 24 * 3600.0  # a ticket outlives any show it is for; its show's end ends it
SEAT_TTL = 12 * 3600.0  # as long as a session: who holds a ticket's seat


class TicketRequired(Forbidden):
    """The show admits ticket holders only: its own code is not enough."""

    code = "ticket_required"


@dataclass(frozen=True, slots=True)
class Ticket:
    """One ticket (its code is never stored)."""

    id: str  # the digest's head: names the ticket in logs and its seat
    show: str
    label: str
    head_count: int


def normalise_ticket(digits: str) -> str | None:
    """The 16 digits of a ticket code (separators already dropped), or None if these are not."""
    if len(digits) == TICKET_DIGITS and digits.isascii() and digits.isdigit():
        return digits
    return None


def format_ticket(code: str) -> str:
    """``1234567890123456`` → ``1234 5678 9012 3456``."""
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def check_head_count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= HEAD_COUNT_MAX:
        raise InvalidInput(f"head_count must be a whole number 1–{HEAD_COUNT_MAX}")
    return value


class Tickets:
    """Tickets on the bus."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def mint(
        self, show_id: str, count: object, label: object = None, head_count: object = 1
    ) -> list[tuple[str, Ticket]]:
        """``count`` new tickets for the show: each code (shown this once) with its ticket."""
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MINT_MAX:
            raise InvalidInput(f"count must be a whole number 1–{MINT_MAX}")
        text = "" if label in (None, "") else clean_text(label, LABEL_MAX, "label")
        heads = check_head_count(head_count)
        minted = []
        for _ in range(count):
            code = f"{secrets.randbelow(10**TICKET_DIGITS):0{TICKET_DIGITS}d}"
            digest = _digest(code)
            ticket = Ticket(id=digest[:16], show=show_id, label=text, head_count=heads)
            stored = await self._bus.set(
                f"ticket:{digest}", asdict(ticket), ttl=TICKET_TTL, only_new=True
            )
            if stored:  # a clash in 10¹⁶ is not a ticket given twice: that one is skipped
                minted.append((code, ticket))
        return minted

    async def find(self, code: str) -> Ticket | None:
        """The ticket with this code, if any."""
        record = await self._bus.get(f"ticket:{_digest(code)}")
        return None if record is None else _ticket(record)

    async def take_seat(
        self, ticket: Ticket, member_id: str, lobby_id: str
    ) -> dict[str, Any] | None:
        """This member holds the ticket's seat now; who held it before, if another member
        (``{"member", "lobby"}``), to be let go."""
        key = f"ticketseat:{ticket.id}"
        before = await self._bus.get(key)
        await self._bus.set(key, {"member": member_id, "lobby": lobby_id}, ttl=SEAT_TTL)
        if before is None or before.get("member") == member_id:
            return None
        return dict(before)


def _ticket(record: dict[str, Any]) -> Ticket:
    return Ticket(
        id=str(record["id"]),
        show=str(record["show"]),
        label=str(record.get("label", "")),
        head_count=int(record.get("head_count", 1)),
    )
