"""The Sentinel Hub source against a fake Sentinel Hub: a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from sentinelhub import SentinelHubDownloadClient

from flows.params import SatelliteParams
from tasks.errors import BadInputError
from tasks.satellite import sentinelhub as shsrc

CLIENT_ID = "tessera-test-client"
CLIENT_SECRET = "s3cr3t-do-not-log-7f3a"
BBOX = (12.50, 41.89, 12.51, 41.90)
RESOLUTION = 20.0


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def _jwt(client_id: str) -> str:
    return ".".join([_b64({"alg": "none", "typ": "JWT"}),
                     _b64({"azp": client_id, "exp": int(time.time()) + 3600}), "c2ln"])


def geotiff_for(body: dict) -> bytes:
    """A 7-band uint16 GeoTIFF for a Process API request body: bands 1000 + 100 * band + row, SCL 9 (cloud)
    on every fifth row, else 4."""
    width, height = body["output"]["width"], body["output"]["height"]
    bounds = body["input"]["bounds"]
    epsg = int(bounds["properties"]["crs"].rstrip("/").rsplit("/", 1)[-1])
    rows = np.arange(height, dtype=np.uint16)[:, None] * np.ones((1, width), np.uint16)
    scl = np.where(rows % 5 == 4, 9, 4)
    data = np.stack([1000 + 100 * b + rows for b in range(6)] + [scl]).astype(np.uint16)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 7, "dtype": "uint16",
               "crs": f"EPSG:{epsg}", "transform": from_bounds(*bounds["bbox"], width, height),
               "interleave": "pixel"}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
        return mem.read()


class FakeSentinelHub:
    """OAuth token and Process API endpoints; scripted failures are served first, in order."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.token_failures: list[tuple[int, dict, bytes]] = []
        self.process_failures: list[tuple[int, dict, bytes]] = []
        self.token = _jwt(CLIENT_ID)
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, headers: dict, body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with fake.lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    fake.requests.append({"path": self.path, "headers": headers, "body": raw})
                    if self.path == "/oauth/token":
                        failure = fake.token_failures.pop(0) if fake.token_failures else None
                    elif self.path == "/api/v1/process":
                        failure = fake.process_failures.pop(0) if fake.process_failures else None
                    else:
                        failure = (404, {}, b"not found")
                if failure:
                    self._send(*failure)
                elif self.path == "/oauth/token":
                    form = parse_qs(raw.decode())
                    if form.get("client_secret") != [CLIENT_SECRET]:
                        self._send(401, {"Content-Type": "application/json"},
                                   b'{"error": "invalid_client", "error_description": "Invalid client"}')
                        return
                    token = {"access_token": fake.token, "token_type": "Bearer", "expires_in": 3600}
                    self._send(200, {"Content-Type": "application/json"}, json.dumps(token).encode())
                elif self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._send(401, {"Content-Type": "application/json"},
                               b'{"error": {"status": 401, "reason": "Unauthorized"}}')
                else:
                    self._send(200, {"Content-Type": "image/tiff"}, geotiff_for(json.loads(raw)))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def seen(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]


@pytest.fixture
def fake_sh(monkeypatch, tmp_path):
    fake = FakeSentinelHub()
    fake.thread.start()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("SH_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SH_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("SH_BASE_URL", fake.url)
    monkeypatch.setenv("SH_TOKEN_URL", f"{fake.url}/oauth/token")
    SentinelHubDownloadClient.clear_cache()
    try:
        yield fake
    finally:
        SentinelHubDownloadClient.clear_cache()
        fake.server.shutdown()
        fake.server.server_close()
        fake.thread.join(timeout=5)


def _fetch(folder, **kwargs):
    args = {"bbox": BBOX, "time_from": "2024-06-01", "time_to": "2024-06-30", "resolution": RESOLUTION,
            "backoff": 0.01}
    return shsrc.fetch_sentinelhub_scenes(folder, **{**args, **kwargs})


@pytest.mark.integration
def test_fetch_writes_band_and_scl_geotiffs(fake_sh, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "scenes"

    paths = _fetch(out)

    assert [p.rsplit("/", 1)[-1] for p in paths] == ["S2L2A_2024-06-01_2024-06-30_t0.tif",
                                                     "S2L2A_2024-06-01_2024-06-30_t0_SCL.tif"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.rsplit("/", 1)[-1] for p in paths)
    (process,) = fake_sh.seen("/api/v1/process")
    body = json.loads(process["body"])
    width, height = body["output"]["width"], body["output"]["height"]
    assert 30 < width < 60 and 40 < height < 70
    data_filter = body["input"]["data"][0]["dataFilter"]
    assert body["input"]["data"][0]["type"] == "sentinel-2-l2a"
    assert data_filter["mosaickingOrder"] == "leastCC"
    assert data_filter["timeRange"]["from"].startswith("2024-06-01")
    assert 'units: "DN"' in body["evalscript"] and '"SCL"' in body["evalscript"]
    assert process["headers"]["accept"] == "image/tiff"

    with rasterio.open(paths[0]) as src:
        assert src.crs.to_epsg() == 32633
        assert (src.width, src.height, src.count) == (width, height, 6)
        assert src.dtypes == ("uint16",) * 6 and src.nodata == 0
        assert src.descriptions == ("B02", "B03", "B04", "B08", "B11", "B12")
        assert src.res == (RESOLUTION, RESOLUTION)
        assert src.bounds.left % RESOLUTION == 0 and src.bounds.top % RESOLUTION == 0
        bands = src.read()
    assert bands[0, 0, 0] == 1000 and bands[5, 3, 0] == 1503
    with rasterio.open(paths[1]) as scl:
        assert scl.crs.to_epsg() == 32633 and scl.count == 1 and scl.dtypes == ("uint8",) and scl.nodata == 0
        assert (scl.width, scl.height) == (width, height) and scl.transform == src.transform
        assert set(np.unique(scl.read(1))) == {4, 9}

    (token,) = fake_sh.seen("/oauth/token")
    assert CLIENT_SECRET in token["body"].decode()
    assert CLIENT_SECRET not in caplog.text
    assert fake_sh.token not in caplog.text


@pytest.mark.integration
def test_large_bbox_is_split_into_tiles(fake_sh, tmp_path, monkeypatch):
    monkeypatch.setattr(shsrc, "MAX_TILE_PX", 25)

    paths = _fetch(tmp_path, mosaicking_order="mostRecent")

    bodies = [json.loads(r["body"]) for r in fake_sh.seen("/api/v1/process")]
    assert len(bodies) == 6 and len(paths) == 12
    assert all(b["output"]["width"] <= 25 and b["output"]["height"] <= 25 for b in bodies)
    assert {b["input"]["data"][0]["dataFilter"]["mosaickingOrder"] for b in bodies} == {"mostRecent"}
    assert len(fake_sh.seen("/oauth/token")) == 1
    with rasterio.open(paths[0]) as first, rasterio.open(paths[2]) as second:
        assert first.bounds.right == second.bounds.left and first.bounds.top == second.bounds.top


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore::sentinelhub.exceptions.SHRateLimitWarning")
def test_429_then_success(fake_sh, tmp_path):
    fake_sh.process_failures.append((429, {"Retry-After": "0", "Content-Type": "application/json"},
                                     b'{"error": {"status": 429, "reason": "Too Many Requests"}}'))

    paths = _fetch(tmp_path)

    assert len(fake_sh.seen("/api/v1/process")) == 2
    assert len(paths) == 2
    with rasterio.open(paths[0]) as src:
        assert src.count == 6


@pytest.mark.integration
def test_5xx_until_attempts_run_out(fake_sh, tmp_path):
    busy = b'{"error": {"status": 503, "reason": "Service Unavailable", "message": "Try again later"}}'
    fake_sh.process_failures.extend([(503, {"Content-Type": "application/json"}, busy)] * 3)

    with pytest.raises(RuntimeError, match="HTTP 503 after 3 attempt.*: Try again later") as info:
        _fetch(tmp_path, max_attempts=3)

    assert f"{fake_sh.url}/api/v1/process" in str(info.value)
    assert len(fake_sh.seen("/api/v1/process")) == 3
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
@pytest.mark.parametrize(("endpoint", "status", "body"), [
    ("token", 401, b'{"error": "invalid_client", "error_description": "Invalid client or credentials"}'),
    ("token", 401, b"Unauthorized"),
    ("process", 401, b'{"error": {"status": 401, "reason": "Unauthorized"}}'),
    ("process", 403, b'{"error": {"status": 403, "reason": "Forbidden"}}'),
])
def test_rejected_credentials(fake_sh, tmp_path, endpoint, status, body):
    failures = fake_sh.token_failures if endpoint == "token" else fake_sh.process_failures
    failures.append((status, {"Content-Type": "application/json"}, body))

    with pytest.raises(BadInputError, match=rf"rejected the credentials \({status}\)") as info:
        _fetch(tmp_path)

    message = str(info.value)
    assert "\n" not in message and "SH_CLIENT_ID" in message and CLIENT_SECRET not in message
    assert info.value.exit_code == 2
    path = "/oauth/token" if endpoint == "token" else "/api/v1/process"
    assert len(fake_sh.seen(path)) == 1


def test_missing_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("SH_CLIENT_ID", raising=False)
    monkeypatch.delenv("SH_CLIENT_SECRET", raising=False)
    monkeypatch.setattr(shsrc, "_prefect_secret", lambda name: None)

    with pytest.raises(BadInputError, match="SH_CLIENT_ID and SH_CLIENT_SECRET"):
        _fetch(tmp_path)


def test_bad_arguments_are_bad_input(monkeypatch, tmp_path):
    monkeypatch.setenv("SH_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SH_CLIENT_SECRET", CLIENT_SECRET)
    with pytest.raises(BadInputError, match="mosaicking_order"):
        _fetch(tmp_path, mosaicking_order="cloudiest")
    with pytest.raises(BadInputError, match="bbox"):
        _fetch(tmp_path, bbox=(12.51, 41.89, 12.50, 41.90))


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness")
def test_satellite_flow_from_sentinelhub(fake_sh, tmp_path, data_root):
    import geopandas as gpd
    from shapely.geometry import box

    from flows.satellite import satellite

    west, south, east, north = 12.50, 41.89, 12.56, 41.93
    middle = (south + north) / 2
    labels = tmp_path / "labels.geojson"
    gpd.GeoDataFrame({"class": ["north", "south"]},
                     geometry=[box(west, middle, east, north), box(west, south, east, middle)],
                     crs="EPSG:4326").to_file(labels)

    result = satellite(SatelliteParams(source="sentinelhub", bbox=[west, south, east, north], time_from="2024-06-01",
                       time_to="2024-06-30", resolution=20, labels=str(labels), epochs=3))

    assert result["status"] == "completed"
    assert result["counts"]["scenes_in"] == 1 and result["counts"]["label_polygons_in"] == 2
    assert result["model"]["trained"] and set(result["metrics"]["per_class"]) == {"north", "south"}
    assert len(fake_sh.seen("/api/v1/process")) == 1
    assert CLIENT_SECRET not in (data_root / "satellite" / "runs" / result["run_id"] / "run.json").read_text()
