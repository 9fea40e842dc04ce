"""The install ISO a command works on: one given as a URL is downloaded first."""

from __future__ import annotations

from dataclasses import replace

from winarm.config.vm import Config


def fetch_iso(cfg: Config) -> Config:
    """The configuration with a URL ``--iso`` downloaded into ``STORAGE/downloads`` (resumed, checked against
    ``--iso-sha256``). Raises what :func:`winarm.media.download.fetch` raises."""
    if cfg.iso_url is None:
        return cfg
    from winarm.media.download import fetch, text_progress

    path = fetch(cfg.iso_url, cfg.storage / "downloads", sha256=cfg.iso_sha256, progress=text_progress())
    return replace(cfg, iso=path)


def planned_iso(cfg: Config) -> Config:
    """The configuration with a URL ``--iso`` replaced by where its download would go; nothing is fetched."""
    if cfg.iso_url is None:
        return cfg
    from winarm.media.download import file_name

    return replace(cfg, iso=cfg.storage / "downloads" / file_name(cfg.iso_url))
