"""A STAC server on 127.0.0.1 for the tests: a catalog folder served as files and, under /api, a tiny STAC API
(landing page, collection, item search) over the same items."""

from __future__ import annotations

import io
import json
import re
import threading
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pystac


class StacServer:
    """The catalog folder as files (with Range requests, as GDAL's /vsicurl reads them) and, under /api, a STAC API
    over the same items. ``failures`` maps a file path to how many requests for it answer 500 (-1: all)."""

    def __init__(self, root: Path) -> None:
        self.root, self.failures, self.hits, self.searches, self.lock = root, {}, {}, [], threading.Lock()
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args) -> None:
                pass

            def _failing(self) -> bool:
                path = urlparse(self.path).path
                with server.lock:
                    server.hits[path] = server.hits.get(path, 0) + 1
                    left = server.failures.get(path, 0)
                    if left:
                        server.failures[path] = left - 1 if left > 0 else left
                if left:
                    self._reply(500, b"internal server error", "text/plain")
                return bool(left)

            def _reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self) -> None:
                if not self._failing():
                    super().do_HEAD()

            def do_GET(self) -> None:
                if self._failing():
                    return
                url = urlparse(self.path)
                if url.path.startswith("/api"):
                    params = {k: v[0] for k, v in parse_qs(url.query).items()}
                    self._api(url.path, params)
                    return
                super().do_GET()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._api(urlparse(self.path).path, json.loads(body or b"{}"))

            def _api(self, path: str, params: dict) -> None:
                status, answer = server.api(path.rstrip("/"), params)
                self._reply(status, json.dumps(answer).encode(),
                            "application/geo+json" if answer.get("type") == "FeatureCollection" else "application/json")

            def send_head(self):
                """Files with Range support (SimpleHTTPRequestHandler answers every GET whole)."""
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
                path = Path(self.translate_path(self.path))
                if not match or not path.is_file():
                    return super().send_head()
                data = path.read_bytes()
                start, end = int(match[1]), min(int(match[2] or len(data) - 1), len(data) - 1)
                self.send_response(206)
                self.send_header("Content-Type", "image/tiff")
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                return io.BytesIO(data[start:end + 1])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        catalog = pystac.Catalog.from_file(str(root / "catalog.json"))
        catalog.make_all_asset_hrefs_absolute()
        self.items = [item.to_dict() for item in catalog.get_items(recursive=True)]
        for item in self.items:
            for asset in item["assets"].values():
                asset["href"] = f"{self.url}/{Path(asset['href']).relative_to(root).as_posix()}"

    def api(self, path: str, params: dict) -> tuple[int, dict]:
        api = f"{self.url}/api"
        if path == "/api":
            return 200, {
                "type": "Catalog", "id": "tessera-test-api", "description": "a tiny STAC API", "stac_version": "1.0.0",
                "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/collections",
                               "https://api.stacspec.org/v1.0.0/item-search",
                               "https://api.stacspec.org/v1.0.0/item-search#query"],
                "links": [{"rel": "self", "href": api}, {"rel": "root", "href": api},
                          {"rel": "data", "href": f"{api}/collections", "type": "application/json"},
                          {"rel": "search", "href": f"{api}/search", "type": "application/geo+json", "method": "GET"},
                          {"rel": "search", "href": f"{api}/search", "type": "application/geo+json",
                           "method": "POST"}]}
        if path == "/api/collections/sentinel-2-l2a":
            return 200, {"type": "Collection", "id": "sentinel-2-l2a", "stac_version": "1.0.0", "license": "other",
                         "description": "Sentinel-2 L2A", "links": [{"rel": "root", "href": api}],
                         "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                                    "temporal": {"interval": [["2024-01-01T00:00:00Z", None]]}}}
        if path == "/api/search":
            self.searches.append(params)
            return 200, {"type": "FeatureCollection", "features": self.search(params), "links": []}
        return 404, {"code": "NotFound", "description": path}

    def search(self, params: dict) -> list[dict]:
        def listed(value) -> list:
            return value if isinstance(value, list) else str(value).split(",")

        found = self.items
        if params.get("collections"):
            found = [i for i in found if i.get("collection") in listed(params["collections"])]
        if params.get("bbox"):
            x0, y0, x1, y1 = map(float, listed(params["bbox"]))
            found = [i for i in found if i["bbox"][0] <= x1 and x0 <= i["bbox"][2] and i["bbox"][1] <= y1
                     and y0 <= i["bbox"][3]]
        if params.get("datetime"):
            start, end = (None if v in ("", "..") else datetime.fromisoformat(v)
                          for v in params["datetime"].split("/"))
            found = [i for i in found if (start is None or datetime.fromisoformat(i["properties"]["datetime"]) >= start)
                     and (end is None or datetime.fromisoformat(i["properties"]["datetime"]) <= end)]
        query = params.get("query")
        query = json.loads(query) if isinstance(query, str) else query or {}
        for field, condition in query.items():
            found = [i for i in found if field in i["properties"] and i["properties"][field] < condition["lt"]]
        return found

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
