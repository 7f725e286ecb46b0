"""Render deploy/prometheus/prometheus.yml.tmpl for one tarn-am; standard library only (the
demo runs it without the project's virtualenv).

    python deploy/prometheus/render.py --am-url http://am-host:8888 --token-file /etc/prometheus/tarn-am.token
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from string import Template
from typing import List, Optional
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "prometheus.yml.tmpl"
RULES = HERE / "tarn-rules.yml"
DURATION = re.compile(r"^\d+(ms|s|m|h)$")


def render(am_url: str, token_file: Path, rules_file: Path = RULES, scrape_interval: str = "15s",
           sd_refresh_interval: str = "30s") -> str:
    """The configuration text; a value Prometheus would refuse raises ValueError naming it."""
    parts = urlsplit(am_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
        raise ValueError(f"am_url must be http(s)://host:port of tarn-am, got {am_url!r}")
    for name, value in (("scrape_interval", scrape_interval), ("sd_refresh_interval", sd_refresh_interval)):
        if not DURATION.match(value):
            raise ValueError(f"{name} must be a Prometheus duration such as 15s, got {value!r}")
    for name, path in (("token_file", token_file), ("rules_file", rules_file)):
        if not Path(path).is_absolute():
            raise ValueError(f"{name} must be an absolute path, got {str(path)!r}")
    return Template(TEMPLATE.read_text()).substitute(
        am_url=am_url.rstrip("/"), token_file=token_file, rules_file=rules_file,
        scrape_interval=scrape_interval, sd_refresh_interval=sd_refresh_interval)


def command(binary: str, config_file: Path, data_dir: Path, listen: str) -> List[str]:
    """How the demo and the tests run Prometheus: loopback, a private data directory, a short retention."""
    return [binary, f"--config.file={config_file}", f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address={listen}", "--storage.tsdb.retention.time=1d", "--log.level=warn"]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--am-url", required=True, help="tarn-am's address, http://host:port (tarn status shows it)")
    parser.add_argument("--token-file", required=True, type=Path, help="file holding tarn-am's API token")
    parser.add_argument("--rules-file", type=Path, default=RULES, help=f"recording rules (default {RULES})")
    parser.add_argument("--scrape-interval", default="15s")
    parser.add_argument("--sd-refresh-interval", default="30s")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render(args.am_url, args.token_file.absolute(), args.rules_file.absolute(),
                                args.scrape_interval, args.sd_refresh_interval))
    except ValueError as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
