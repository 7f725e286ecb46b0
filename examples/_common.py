"""What the three Open Inference Protocol examples share: the command line and the headers.

The server is a Triton instance, HAProxy in front of the fleet, or Knox: anything speaking
KServe v2 over HTTP. Through HAProxy with the authz Lua action, give --user and --password
(HAProxy checks them, then asks tarn-authz whether that user may run the model).
"""
from __future__ import annotations

import argparse
import base64
from typing import Dict, List, Optional


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", default="localhost:8000",
                   help="host:port of Triton, HAProxy or Knox (default: localhost:8000, as in the seeds)")
    p.add_argument("--user", help="user for HTTP basic authentication (HAProxy with the authz action)")
    p.add_argument("--password", default="", help="password for --user")
    p.add_argument("--ssl", action="store_true", help="use https (Knox)")
    return p


def headers(user: Optional[str], password: str) -> Optional[Dict[str, str]]:
    if not user:
        return None
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def split_url(url: str) -> List[str]:
    """tritonclient wants host:port; accept a full http(s):// URL too."""
    for scheme in ("http://", "https://"):
        if url.startswith(scheme):
            return [url[len(scheme):].rstrip("/"), scheme]
    return [url, ""]


def client(args: argparse.Namespace):
    """The HTTP client for --url (and --ssl, or an https:// URL)."""
    import tritonclient.http as httpclient

    url, scheme = split_url(args.url)
    return httpclient.InferenceServerClient(url=url, ssl=args.ssl or scheme == "https://")
