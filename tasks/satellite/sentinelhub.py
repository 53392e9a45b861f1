"""Sentinel-2 L2A scenes from the Sentinel Hub Process API, written as GeoTIFFs that `find_scenes` reads.

Each tile gives ``S2L2A_<from>_<to>_t<i>.tif`` (B02, B03, B04, B08, B11, B12 as uint16 DN, that is
reflectance x 10000) and ``S2L2A_<from>_<to>_t<i>_SCL.tif`` (scene classification, uint8), on the UTM grid of
the bbox centre.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import requests
from affine import Affine
from oauthlib.oauth2.rfc6749.errors import InsecureTransportError, OAuth2Error
from rasterio.crs import CRS as RioCRS
from rasterio.errors import CRSError
from rasterio.transform import from_bounds
from rasterio.warp import transform_bounds
from sentinelhub import (
    CRS,
    BBox,
    DataCollection,
    MimeType,
    MosaickingOrder,
    SentinelHubRequest,
    SHConfig,
    bbox_to_dimensions,
    parse_time_interval,
)
from sentinelhub.decoding import decode_sentinelhub_err_msg
from sentinelhub.exceptions import DownloadFailedException, OutOfRequestsException

from tasks.errors import BadInputError

log = logging.getLogger(__name__)
# requests_oauthlib logs the token request body, client secret included, at DEBUG.
logging.getLogger("requests_oauthlib").setLevel(logging.INFO)

BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
MAX_TILE_PX = 2500
COLLECTION_NAME = "S2L2A_TESSERA"
CREDENTIALS_HINT = ("set SH_CLIENT_ID and SH_CLIENT_SECRET (or the Prefect Secret blocks "
                    "sentinelhub-client-id / sentinelhub-client-secret)")

EVALSCRIPT = """//VERSION=3
function setup() {
  return {
    input: [{bands: ["B02", "B03", "B04", "B08", "B11", "B12", "SCL"], units: "DN"}],
    output: {bands: 7, sampleType: "UINT16"}
  };
}
function evaluatePixel(s) {
  return [s.B02, s.B03, s.B04, s.B08, s.B11, s.B12, s.SCL];
}
"""


@dataclass(frozen=True)
class Tile:
    index: int
    bounds: tuple[float, float, float, float]
    width: int
    height: int


def _prefect_secret(name: str) -> str | None:
    try:
        from prefect.blocks.system import Secret

        value = Secret.load(name, _sync=True).get()
    except Exception as exc:  # no Prefect server, no such block, or Prefect not installed
        log.debug("Prefect Secret block %s not available (%s)", name, type(exc).__name__)
        return None
    return str(value) if value else None


def _credential(env_var: str, block: str) -> str | None:
    return os.environ.get(env_var) or _prefect_secret(block)


def sentinelhub_config() -> SHConfig:
    """Config from SH_CLIENT_ID / SH_CLIENT_SECRET (else Prefect Secret blocks), SH_BASE_URL, SH_TOKEN_URL."""
    client_id = _credential("SH_CLIENT_ID", "sentinelhub-client-id")
    client_secret = _credential("SH_CLIENT_SECRET", "sentinelhub-client-secret")
    if not client_id or not client_secret:
        raise BadInputError(f"Sentinel Hub credentials are missing: {CREDENTIALS_HINT}")
    urls = {}
    if base_url := os.environ.get("SH_BASE_URL"):
        urls["sh_base_url"] = base_url.rstrip("/")
    if token_url := os.environ.get("SH_TOKEN_URL"):
        urls["sh_token_url"] = token_url
    return SHConfig(use_defaults=True, sh_client_id=client_id, sh_client_secret=client_secret, **urls)


@functools.cache
def s2l2a_collection() -> DataCollection:
    """Sentinel-2 L2A without its own service URL, so requests go to the config's ``sh_base_url``."""
    try:
        return DataCollection.SENTINEL2_L2A.define_from(COLLECTION_NAME, service_url=None)
    except ValueError:
        wanted = DataCollection.SENTINEL2_L2A.value.derive(service_url=None)
        existing = next((c for c in DataCollection if c.value == wanted), None)
        if existing is None:
            raise
        return existing


def _utm_grid(bbox: tuple[float, float, float, float], bbox_crs: str,
              resolution: float) -> tuple[CRS, tuple[float, float, float, float]]:
    try:
        src = RioCRS.from_user_input(bbox_crs)
    except CRSError as exc:
        raise BadInputError(f"bbox_crs {bbox_crs!r} is not a known CRS; pass e.g. 'EPSG:4326'") from exc
    lon0, lat0, lon1, lat1 = transform_bounds(src, "EPSG:4326", *bbox, densify_pts=21)
    if not all(map(math.isfinite, (lon0, lat0, lon1, lat1))) or not -90 <= lat0 <= lat1 <= 90:
        raise BadInputError(f"bbox {bbox} is not a valid area in {bbox_crs}; "
                            "give (min_x, min_y, max_x, max_y)")
    epsg = src.to_epsg()
    if epsg is not None and (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        utm = CRS(epsg)
    else:
        utm = CRS.get_utm_from_wgs84((lon0 + lon1) / 2, (lat0 + lat1) / 2)
    x0, y0, x1, y1 = transform_bounds(src, RioCRS.from_epsg(utm.epsg), *bbox, densify_pts=21)
    snapped = (math.floor(x0 / resolution) * resolution, math.floor(y0 / resolution) * resolution,
               math.ceil(x1 / resolution) * resolution, math.ceil(y1 / resolution) * resolution)
    return utm, snapped


def _tiles(bounds: tuple[float, float, float, float], crs: CRS, resolution: float) -> list[Tile]:
    x0, y0, x1, y1 = bounds
    width, height = round((x1 - x0) / resolution), round((y1 - y0) / resolution)
    tiles = []
    for r0 in range(0, height, MAX_TILE_PX):
        r1 = min(r0 + MAX_TILE_PX, height)
        for c0 in range(0, width, MAX_TILE_PX):
            c1 = min(c0 + MAX_TILE_PX, width)
            tile_bounds = (x0 + c0 * resolution, y1 - r1 * resolution,
                           x0 + c1 * resolution, y1 - r0 * resolution)
            w, h = bbox_to_dimensions(BBox(tile_bounds, crs=crs), resolution)
            tiles.append(Tile(len(tiles), tile_bounds, w, h))
    return tiles


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, OutOfRequestsException):
        return 429
    if isinstance(exc, OAuth2Error):
        return exc.status_code
    response = getattr(getattr(exc, "request_exception", None), "response", None)
    if response is None:
        response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _is_transient(exc: BaseException, status: int | None) -> bool:
    if status is not None:
        return status == 429 or status >= 500
    cause = getattr(exc, "request_exception", exc)
    return isinstance(cause, (requests.ConnectionError, requests.Timeout))


def _failure(exc: BaseException, status: int | None, cfg: SHConfig, attempts: int) -> Exception:
    if isinstance(exc, InsecureTransportError):
        return BadInputError(f"SH_TOKEN_URL must use https (or set OAUTHLIB_INSECURE_TRANSPORT=1 "
                             f"for a local test server); got {cfg.sh_token_url}")
    if status in (401, 403) or isinstance(exc, OAuth2Error):
        return BadInputError(f"Sentinel Hub rejected the credentials ({status}): {CREDENTIALS_HINT}")
    cause = getattr(exc, "request_exception", None) or exc
    what = f"HTTP {status}" if status is not None else type(cause).__name__
    url = getattr(getattr(cause, "request", None), "url", None) or f"{cfg.sh_base_url}/api/v1/process"
    reason = _server_reason(getattr(cause, "response", None))
    return RuntimeError(f"Sentinel Hub request to {url} failed with {what} after {attempts} attempt(s)"
                        + (f": {reason}" if reason else ""))


def _server_reason(response: requests.Response | None) -> str:
    if response is None:
        return ""
    message = decode_sentinelhub_err_msg(response)
    try:
        parsed = json.loads(message)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        message = parsed.get("message") or parsed.get("reason") or message
    return " ".join(str(message).split())[:200]


def _download(request: SentinelHubRequest, cfg: SHConfig, max_attempts: int, backoff: float) -> np.ndarray:
    attempt = 0
    while True:
        attempt += 1
        try:
            return request.get_data()[0]
        except (DownloadFailedException, OAuth2Error, requests.RequestException) as exc:
            status = _status(exc)
            if not _is_transient(exc, status) or attempt >= max_attempts:
                raise _failure(exc, status, cfg, attempt) from exc
            delay = backoff * 2 ** (attempt - 1)
            log.warning("Sentinel Hub answered %s; retrying in %.2f s (attempt %d/%d)",
                        status or type(exc).__name__, delay, attempt + 1, max_attempts)
            time.sleep(delay)


def _safe(part: str) -> str:
    return re.sub(r"[^0-9A-Za-z-]", "", part)


def _write(path: Path, data: np.ndarray, *, crs: CRS, transform: Affine, dtype: str,
           descriptions: tuple[str, ...] | None = None) -> None:
    count, height, width = data.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": count, "dtype": dtype,
               "nodata": 0, "crs": RioCRS.from_epsg(crs.epsg), "transform": transform,
               "compress": "deflate", "tiled": True, "blockxsize": 256, "blockysize": 256}
    tmp = path.with_name(path.name + ".part")
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data.astype(dtype, copy=False))
            for i, name in enumerate(descriptions or (), start=1):
                dst.set_band_description(i, name)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def fetch_sentinelhub_scenes(folder: str | Path, *, bbox: tuple[float, float, float, float],
                             bbox_crs: str = "EPSG:4326", time_from: str, time_to: str,
                             resolution: float = 10.0,
                             mosaicking_order: str = "leastCC", config: SHConfig | None = None,
                             max_attempts: int = 4, backoff: float = 1.0) -> list[str]:
    """Download a Sentinel-2 L2A mosaic of ``bbox`` over [time_from, time_to] into ``folder``.

    ``bbox`` is (min_x, min_y, max_x, max_y) in ``bbox_crs`` (longitude first for EPSG:4326). One request per
    tile of at most 2500 px a side; HTTP 429 and 5xx are retried after ``backoff * 2**attempt`` seconds.
    Returns the paths written: per tile the band file, then its SCL file.
    """
    if len(bbox) != 4 or not (bbox[0] < bbox[2] and bbox[1] < bbox[3]):
        raise BadInputError(f"bbox {bbox} must be (min_x, min_y, max_x, max_y) with min < max")
    if not resolution > 0:
        raise BadInputError(f"resolution {resolution} must be a positive number of metres")
    if max_attempts < 1:
        raise BadInputError(f"max_attempts {max_attempts} must be at least 1")
    try:
        order = MosaickingOrder(mosaicking_order)
    except ValueError as exc:
        choices = ", ".join(o.value for o in MosaickingOrder)
        raise BadInputError(f"mosaicking_order {mosaicking_order!r} is not one of {choices}") from exc
    try:
        parse_time_interval((time_from, time_to))
    except ValueError as exc:
        raise BadInputError(f"time range {time_from!r}..{time_to!r} is not valid; use YYYY-MM-DD, "
                            "with time_from before time_to") from exc

    cfg = (config or sentinelhub_config()).copy()
    if not (cfg.sh_client_id and cfg.sh_client_secret):
        raise BadInputError(f"Sentinel Hub credentials are missing: {CREDENTIALS_HINT}")
    cfg.max_download_attempts = 1
    cfg.max_retries = 1

    utm, bounds = _utm_grid(tuple(bbox), bbox_crs, resolution)
    tiles = _tiles(bounds, utm, resolution)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"S2L2A_{_safe(time_from)}_{_safe(time_to)}"
    log.info("Sentinel Hub: %d tile(s) on EPSG:%s at %g m, %s..%s", len(tiles), utm.epsg, resolution,
             time_from, time_to)

    written: list[str] = []
    for tile in tiles:
        request = SentinelHubRequest(
            evalscript=EVALSCRIPT,
            input_data=[SentinelHubRequest.input_data(data_collection=s2l2a_collection(),
                                                      time_interval=(time_from, time_to),
                                                      mosaicking_order=order)],
            responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
            bbox=BBox(tile.bounds, crs=utm),
            size=(tile.width, tile.height),
            config=cfg,
        )
        data = np.asarray(_download(request, cfg, max_attempts, backoff))
        if data.shape != (tile.height, tile.width, len(BANDS) + 1):
            raise RuntimeError(f"Sentinel Hub returned an array of shape {data.shape} for tile {tile.index}; "
                               f"expected {(tile.height, tile.width, len(BANDS) + 1)}")
        transform = from_bounds(*tile.bounds, tile.width, tile.height)
        band_path = out / f"{stem}_t{tile.index}.tif"
        scl_path = out / f"{stem}_t{tile.index}_SCL.tif"
        bands = np.moveaxis(data[..., : len(BANDS)], -1, 0)
        _write(band_path, bands, crs=utm, transform=transform, dtype="uint16", descriptions=BANDS)
        _write(scl_path, data[np.newaxis, ..., len(BANDS)], crs=utm, transform=transform, dtype="uint8")
        written += [str(band_path), str(scl_path)]
        log.info("Sentinel Hub tile %d/%d: %dx%d px -> %s", tile.index + 1, len(tiles), tile.width,
                 tile.height, band_path.name)
    return written
