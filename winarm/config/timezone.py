"""The guest's time zone: a Windows time zone ID (``W. Europe Standard Time``), from a Windows ID or an IANA name.

Windows names its zones by ID (what ``tzutil /l`` lists and the answer file's ``TimeZone`` takes); Linux hosts by
IANA name (``Europe/Berlin``). The mapping between them is tzlocal's (``tzlocal.windows_tz``, generated from the
Unicode CLDR's windowsZones table and kept current with each tzlocal release), not a table of winarm's own.
tzlocal is imported only when a value is mapped: ``winarm up`` does not pay for it at start-up otherwise.
"""

from __future__ import annotations

import functools

from winarm.errors import UserError

DEFAULT_TIMEZONE = "UTC"
"""The Windows ID used when the host's own zone cannot be told or mapped."""
DSTOFF_SUFFIX = "_dstoff"
"""Appended to a Windows ID, the zone without daylight saving time (Microsoft's TimeZone reference)."""
EXAMPLE = "'W. Europe Standard Time' or Europe/Berlin"


@functools.cache
def _tables() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """``(Windows IDs, IANA names, Windows ID -> IANA name)``; the first two by lower-case spelling, each
    giving the canonical Windows ID."""
    from tzlocal.windows_tz import tz_win, win_tz

    ids = {name.lower(): name for name in (*win_tz, *tz_win.values()) if name}
    iana = {name.lower(): windows for name, windows in tz_win.items() if name and windows}
    return ids, iana, dict(win_tz)


def windows_zone_ids() -> frozenset[str]:
    """Every Windows time zone ID the mapping knows (without the ``_dstoff`` variants)."""
    return frozenset(_tables()[0].values())


def is_windows_zone(value: str) -> bool:
    """Whether ``value`` is, exactly as spelled, a known Windows time zone ID, or one with ``_dstoff``."""
    base = value[: -len(DSTOFF_SUFFIX)] if value.endswith(DSTOFF_SUFFIX) else value
    return base in windows_zone_ids()


def windows_timezone(value: str) -> str:
    """The Windows time zone ID ``value`` names: a Windows ID (any case, ``_dstoff`` allowed) or an IANA name
    the mapping knows (``Europe/Berlin`` -> ``W. Europe Standard Time``).

    Raises :class:`UserError` naming the value and an example for anything else (empty, unknown, not ASCII).
    """
    text = value.strip()
    ids, iana, _ = _tables()
    lowered = text.lower()
    suffix = ""
    if lowered.endswith(DSTOFF_SUFFIX.lower()) and lowered[: -len(DSTOFF_SUFFIX)] in ids:
        lowered, suffix = lowered[: -len(DSTOFF_SUFFIX)], DSTOFF_SUFFIX
    if lowered in ids:
        return ids[lowered] + suffix
    if lowered in iana:
        return iana[lowered]
    raise UserError(
        f"time zone {ascii(text)} is neither a Windows time zone ID nor an IANA name that maps to one: "
        f"use for example {EXAMPLE}"
    )


def iana_name(windows_id: str) -> str | None:
    """The IANA zone that stands for a Windows ID (its ``_dstoff`` suffix ignored), or None when unknown."""
    base = windows_id[: -len(DSTOFF_SUFFIX)] if windows_id.endswith(DSTOFF_SUFFIX) else windows_id
    return _tables()[2].get(base)


def host_timezone() -> str:
    """The host's time zone as a Windows ID (tzlocal reads ``TZ``, ``/etc/timezone``, ``/etc/localtime``), or
    :data:`DEFAULT_TIMEZONE` when it cannot be told or has no Windows equivalent. Raises nothing."""
    try:
        import tzlocal

        return windows_timezone(tzlocal.get_localzone_name() or DEFAULT_TIMEZONE)
    except Exception:  # noqa: BLE001 - any failure to tell the host's zone falls back to UTC
        return DEFAULT_TIMEZONE
