"""Calendar files (RFC 5545, made with ``icalendar``): one show's, and a feed per city or category
that a senior's or a care home's calendar subscribes to. A reminder that needs no personal data:
the calendar keeps it, the service never learns who added it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from aiohttp import web
from icalendar import Alarm, Calendar, Event

from rooms.codes import format_code
from rooms.shows import Show, ShowState
from signaling.api import programme_filters, viewer_url
from signaling.errors import ApiError
from signaling.services import services

DURATION = timedelta(hours=1)  # shows carry no end: calendars get an hour
REMINDER = timedelta(minutes=30)  # before the start, the calendar reminds (no data leaves it)
FEED_REFRESH = "PT1H"  # how often a subscribed calendar looks again
FEED_REFRESH_EVERY = timedelta(hours=1)
CONTENT_TYPE = "text/calendar"

routes = web.RouteTableDef()  # added before the show API's: `{show_id}` would take `….ics`


def _calendar(name: str) -> Calendar:
    cal = Calendar()
    cal.add("prodid", "-//Lämpiö Live//lampio_stream//FI")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    return cal


def _event(request: web.Request, show: Show, stamp: datetime) -> Event:
    assert show.starts_at is not None
    host = urlsplit(services(request).site.public_url).hostname or "lampio"
    link = viewer_url(request, show)
    event = Event()
    event.add("uid", f"{show.id}@{host}")
    event.add("dtstamp", stamp)
    start = show.starts_at.astimezone(UTC)  # `…Z`: a show's offset names no time zone a
    event.add("dtstart", start)  # calendar knows (TZID=UTC+02:00 would be read as floating)
    event.add("dtend", start + DURATION)
    event.add("summary", show.title)
    lines = [show.description] if show.description else []
    if show.performer:
        lines.append(show.performer)
    if show.access == "ticket":
        lines.append(f"Lipulla / Med biljett / With a ticket: {link.split('?')[0]}")
    else:
        lines.append(f"Koodi / Kod / Code: {format_code(show.code)} — {link}")
    event.add("description", "\n".join(lines))
    if show.access != "ticket":
        event.add("url", link)
    event.add("location", f"Lämpiö Live{', ' + show.city if show.city else ''}")
    event.add("categories", [show.category])
    event.add("sequence", show.revision)
    event.add("status", "CANCELLED" if show.cancelled else "CONFIRMED")
    if not show.cancelled:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", show.title)
        alarm.add("trigger", -REMINDER)
        event.add_component(alarm)
    return event


def _answer(cal: Calendar, filename: str, cache: int) -> web.Response:
    return web.Response(
        body=cal.to_ical(),
        content_type=CONTENT_TYPE,
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": f"public, max-age={cache}",
        },
    )


@routes.get(r"/api/shows/{show_id:[A-Za-z0-9_-]+}.ics")
async def show_calendar(request: web.Request) -> web.Response:
    """One show as a calendar file (public, like its code: listed or not, by its id). A cancelled
    show is served as cancelled, so a calendar that added it can mark it so."""
    show = await services(request).shows.get(request.match_info["show_id"])
    if show.state is ShowState.ENDED and not show.cancelled:
        raise ApiError(404, "show_not_found", "this show has ended")
    if show.starts_at is None:
        raise ApiError(404, "no_start_time", "this show has no start time yet")
    cal = _calendar(show.title)
    cal.add_component(_event(request, show, datetime.now(UTC)))
    return _answer(cal, "lampio.ics", 300)


@routes.get("/api/calendar.ics")
async def calendar_feed(request: web.Request) -> web.Response:
    """Listed shows with a start time, as a feed a calendar subscribes to, filtered as the
    programme is (``city``, ``category``, …); shows cancelled lately stay in it, cancelled."""
    filters = programme_filters(request)
    shows = services(request).shows
    found = await shows.programme(with_cancelled=True, **filters)
    named = (str(filters[k]) for k in ("city", "category") if k in filters)
    name = " · ".join(["Lämpiö Live", *named])
    cal = _calendar(name)
    cal.add("refresh-interval", FEED_REFRESH_EVERY, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", FEED_REFRESH)
    stamp = datetime.now(UTC)
    for show in found:
        if show.starts_at is not None:
            cal.add_component(_event(request, show, stamp))
    return _answer(cal, "lampio-ohjelma.ics", 900)
