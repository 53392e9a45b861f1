"""Scenes from a STAC API or a static STAC catalog, written as GeoTIFFs that `sources.find_scenes` reads.

Items come from a STAC API search (pystac-client) or from walking a static catalog, collection or item collection
(pystac) and filtering it by bbox, time and cloud cover here. odc-stac loads them because it loads lazily onto one
grid and fuses the items of one solar day (the adjacent tiles of one pass) into one scene: Dask reads a day window by
window, and a day is written band by band before the next one is read. Each day gives
``<prefix>_<YYYYMMDD>_<BAND>.tif`` per band (``S2_20240105_B04.tif``) and its mask: Sentinel-2's ``_SCL.tif`` as
delivered, Landsat's QA_PIXEL bits recoded as ``_FMASK.tif`` (the reader ignores QA_PIXEL).

Each kind of failure is retried by one layer, ``max_attempts`` tries ``backoff * 2**attempt`` seconds apart:
catalog and API JSON by the HTTP session (urllib3 ``Retry``: 429, 5xx, timeouts); raster reads over HTTP by GDAL
itself (``GDAL_HTTP_MAX_RETRY``), because GDAL caches a failed /vsicurl open for the life of the process, so a retry
from Python would only meet the cached failure; a local file GDAL does not recognise although it exists (still being
written or synced) by `retry_reads`. An item still failing is left out and named in the result.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import numpy as np
import pystac
import rasterio
from odc.geo.geom import box
from rasterio.errors import RasterioError
from requests import Session
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from tasks.errors import BadInputError

log = logging.getLogger(__name__)
T = TypeVar("T")

TIMEOUT_S = 120
CHUNK_PX = 2048
# STAC common names (Earth Search's asset keys, eo:bands common_name) to the band names of each mission's files.
SENTINEL2 = {"coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
             "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "swir16": "B11", "swir22": "B12",
             "scl": "SCL"}
LANDSAT_OLI = {"coastal": "B1", "blue": "B2", "green": "B3", "red": "B4", "nir08": "B5", "swir16": "B6",
               "swir22": "B7", "qa_pixel": "QA_PIXEL"}  # Landsat 8 and 9
LANDSAT_TM = {"blue": "B1", "green": "B2", "red": "B3", "nir08": "B4", "swir16": "B5", "swir22": "B7",
              "qa_pixel": "QA_PIXEL"}  # Landsat 4, 5 (TM) and 7 (ETM+)
_KNOWN_BAND = re.compile(r"^(B\d{1,2}A?|SCL|FMASK|QA_PIXEL)$", re.IGNORECASE)
MASKS = ("SCL", "FMASK", "QA_PIXEL")
MASK_ROLES = {"cloud", "cloud-shadow", "data-mask", "snow-ice"}
_UNRECOGNISED = re.compile(r"'?(?P<path>[^']+?)'? not recognized as (?:being in )?a supported file format")


def band_names(item: pystac.Item) -> dict[str, str]:
    """The item's raster assets that the reader knows, asset key to band name: keys already named like the files
    (``B04``, ``SCL``) as they are, common names (``red``, ``qa_pixel``) by the mission's table."""
    platform = str(item.properties.get("platform", "")).lower()
    if "landsat" in platform or "landsat" in (item.collection_id or "").lower():
        table = LANDSAT_TM if platform in ("landsat-4", "landsat-5", "landsat-7") else LANDSAT_OLI
    else:
        table = SENTINEL2
    names: dict[str, str] = {}
    for key in item.assets:
        name = key.upper() if _KNOWN_BAND.match(key) else table.get(key.lower())
        if name and name not in names.values():
            names[key] = name
    return names


def is_mask(key: str, asset: pystac.Asset) -> bool:
    """A class or bit-flag layer, resampled with "nearest": a known mask name, a cloud/data-mask role or the
    classification extension."""
    return (key.upper() in MASKS or bool(MASK_ROLES & set(asset.roles or []))
            or any(k.startswith("classification:") for k in asset.extra_fields))


def fmask_from_qa_pixel(qa: np.ndarray) -> np.ndarray:
    """Landsat Collection 2 QA_PIXEL bits as Fmask classes (0 clear, 1 water, 2 shadow, 3 snow, 4 cloud, 255 fill),
    the codes `sources.INVALID_MASK_VALUES["FMASK"]` reads. 0, where no item covers the grid, is fill."""
    qa = qa.astype("uint16")

    def bit(n: int) -> np.ndarray:
        return ((qa >> n) & 1).astype(bool)

    out = np.zeros(qa.shape, dtype="uint8")
    out[bit(7)] = 1
    out[bit(5)] = 3
    out[bit(4)] = 2
    out[bit(1) | bit(2) | bit(3)] = 4  # dilated cloud, cirrus, cloud
    out[bit(0) | (qa == 0)] = 255
    return out


def retry_reads(fn: Callable[[], T], *, what: str, max_attempts: int, backoff: float) -> T:
    """``fn()``, called again after ``backoff * 2**attempt`` s while it fails on a local file that exists but GDAL
    did not recognise; at most ``max_attempts`` calls."""
    for attempt in range(max_attempts - 1):
        try:
            return fn()
        except RasterioError as exc:
            match = _UNRECOGNISED.search(str(exc))
            if not (match and Path(match["path"]).exists()):
                raise
            delay = backoff * 2 ** attempt
            log.warning("%s: %s; retrying in %.2f s (attempt %d/%d)", what, _one_line(exc), delay, attempt + 2,
                        max_attempts)
            time.sleep(delay)
    return fn()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _is_url(href: str) -> bool:
    return urlparse(href).scheme in ("http", "https")


def _http_retry(max_attempts: int, backoff: float) -> Retry:
    return Retry(total=max_attempts - 1, backoff_factor=backoff, status_forcelist=(429, 500, 502, 503, 504),
                 allowed_methods=None, raise_on_status=True)


class _StacIO(pystac.stac_io.DefaultStacIO):
    """pystac's reader with an HTTP session that times out and retries."""

    def __init__(self, retry: Retry):
        super().__init__()
        self.session = Session()
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))

    def read_text_from_href(self, href: str) -> str:
        if not _is_url(href):
            return super().read_text_from_href(href)
        response = self.session.get(href, timeout=TIMEOUT_S)
        response.raise_for_status()
        return response.text


def _gdal_env(max_attempts: int, backoff: float) -> rasterio.Env:
    """GDAL's options for the reads: odc-stac captures them at load time and sets them around every read."""
    return rasterio.Env(GDAL_HTTP_MAX_RETRY=str(max_attempts - 1), GDAL_HTTP_RETRY_DELAY=str(backoff),
                        GDAL_HTTP_TIMEOUT=str(TIMEOUT_S), GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR")


def _time_range(time_from: str | None, time_to: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[start, end) in UTC; a date alone as ``time_to`` includes that whole day."""
    def parse(value: str | None, end: bool) -> dt.datetime | None:
        if not value:
            return None
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise BadInputError(f"time {value!r} is not a date or time; use YYYY-MM-DD or an ISO 8601 time") from exc
        when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        return when + dt.timedelta(days=1) if end and len(value) == 10 else when

    start, end = parse(time_from, False), parse(time_to, True)
    if start and end and start >= end:
        raise BadInputError(f"time range {time_from}..{time_to} is empty; --time-from must come before --time-to")
    return start, end


def _is_api(root: dict) -> bool:
    """A STAC API landing page: item-search conformance, or a GeoJSON search link (an OpenSearch one is not)."""
    if any(c.rstrip("/").endswith("item-search") for c in root.get("conformsTo", [])):
        return True
    return any(link.get("rel") == "search" and link.get("type", "application/geo+json") in (
        "application/geo+json", "application/json") for link in root.get("links", []))


def _search_api(url: str, *, collection: str | None, bbox, time_from: str | None, time_to: str | None,
                max_cloud: float | None, retry: Retry) -> list[pystac.Item]:
    from pystac_client import Client
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO

    datetime = f"{time_from or '..'}/{time_to or '..'}" if time_from or time_to else None
    try:
        client = Client.open(url, stac_io=StacApiIO(max_retries=retry), timeout=TIMEOUT_S)
        search = client.search(collections=[collection] if collection else None, bbox=bbox, datetime=datetime,
                               query={"eo:cloud_cover": {"lt": max_cloud}} if max_cloud is not None else None)
        return list(search.items())
    except APIError as exc:
        status = getattr(exc, "status_code", None)
        message = f"STAC search of {url} failed ({status or 'no answer'}: {_one_line(exc)[:200]})"
        if status is not None and 400 <= status < 500:
            raise BadInputError(f"{message}; check --collection, --bbox and --time-from/--time-to") from exc
        raise RuntimeError(f"{message}; retry later") from exc


def _walk_static(href: str, root: dict, io: _StacIO) -> list[pystac.Item]:
    if root.get("type") == "FeatureCollection":
        return list(pystac.ItemCollection.from_dict(root, root=None, preserve_dict=False))
    try:
        stac_object = pystac.read_dict(root, href=href, stac_io=io)
        if isinstance(stac_object, pystac.Item):
            return [stac_object]
        return list(stac_object.get_items(recursive=True))
    except (OSError, ValueError) as exc:  # requests' errors are OSErrors; pystac's type errors ValueErrors
        raise BadInputError(f"STAC catalog {href}: cannot read its catalogs and items ({_one_line(exc)[:200]}); "
                            "check that every link of the catalog resolves") from exc


def _wanted(item: pystac.Item, *, collection: str | None, bbox, start: dt.datetime | None,
            end: dt.datetime | None, max_cloud: float | None) -> bool:
    """The API search's filters, for a static catalog: collection, bbox overlap, time overlap, cloud cover."""
    if collection and item.collection_id != collection:
        return False
    if bbox and item.bbox and not (item.bbox[0] <= bbox[2] and bbox[0] <= item.bbox[2]
                                   and item.bbox[1] <= bbox[3] and bbox[1] <= item.bbox[3]):
        return False
    first = item.common_metadata.start_datetime or item.datetime
    last = item.common_metadata.end_datetime or item.datetime
    if (start and last and last < start) or (end and first and first >= end):
        return False
    cloud = item.properties.get("eo:cloud_cover")
    return max_cloud is None or (cloud is not None and cloud < max_cloud)


def find_items(stac: str | Path, *, collection: str | None = None,
               bbox: tuple[float, float, float, float] | None = None, time_from: str | None = None,
               time_to: str | None = None, max_cloud: float | None = None, max_attempts: int = 4,
               backoff: float = 1.0) -> list[pystac.Item]:
    """The items of a STAC API search or of a static catalog, collection or item collection (path, folder or URL)
    in ``bbox`` (lon/lat), [time_from, time_to] and under ``max_cloud`` percent cloud cover."""
    start, end = _time_range(time_from, time_to)
    href = str(stac)
    if not _is_url(href):
        path = Path(href).expanduser().resolve()
        candidates = [path] if path.is_file() else [path / "catalog.json", path / "collection.json"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise BadInputError(f"{stac}: no STAC catalog or collection there; pass --stac a STAC API URL or a "
                                "catalog.json / collection.json (path or URL)")
        href = str(path)
    retry = _http_retry(max_attempts, backoff)
    io = _StacIO(retry)
    try:
        root = io.read_json(href)
    except (OSError, ValueError) as exc:  # requests' errors are OSErrors, JSON's ValueErrors
        raise BadInputError(f"{stac}: cannot read it as STAC JSON ({_one_line(exc)[:200]}); pass --stac a STAC API "
                            "URL or a static catalog.json / collection.json") from exc
    if _is_api(root):
        items = _search_api(href, collection=collection, bbox=bbox, time_from=time_from, time_to=time_to,
                            max_cloud=max_cloud, retry=retry)
        where = f"STAC search of {stac}"
    else:
        everything = _walk_static(href, root, io)
        if not everything:
            raise BadInputError(f"STAC catalog {stac} lists no items; pass a static catalog or collection with item "
                                "links, or a STAC API root URL with --collection")
        items = [i for i in everything if _wanted(i, collection=collection, bbox=bbox, start=start, end=end,
                                                  max_cloud=max_cloud)]
        where = f"STAC catalog {stac} ({len(everything)} items)"
    if not items:
        what = "".join([f" collection {collection}" if collection else "", f" in bbox {tuple(bbox)}" if bbox else "",
                        f" between {time_from or 'the start'} and {time_to or 'now'}" if time_from or time_to else "",
                        f" under {max_cloud:g}% cloud" if max_cloud is not None else ""])
        raise BadInputError(f"{where} found no items{what}; widen --bbox or --time-from/--time-to, raise --max-cloud "
                            "or check --collection")
    return items


def _grid(items: list[pystac.Item], reference: pystac.Item, keys: list[str], *, bbox, resolution: float | None,
          max_attempts: int, backoff: float):
    """The output grid: the CRS of the reference item's finest reflectance asset, its resolution unless
    ``resolution`` is given, over every item, cropped to ``bbox`` if given."""
    import odc.stac

    boxes = odc.stac.parse_item(reference).geoboxes(keys)
    if boxes:
        crs, native = boxes[0].crs, min(abs(v) for v in boxes[0].resolution.xy)
    else:
        href = reference.assets[keys[0]].get_absolute_href()

        def read_header():
            with rasterio.open(href) as src:
                return src.crs, min(src.res)

        crs, native = retry_reads(read_header, what=href, max_attempts=max_attempts, backoff=backoff)
    geobox = odc.stac.output_geobox(list(odc.stac.parse_items(items)), bands=keys, crs=crs,
                                    resolution=resolution or native)
    if bbox:  # crop the items' grid to the search area: one larger than the scenes adds no empty pixels
        region, extent = box(*bbox, "epsg:4326"), geobox.extent.to_crs("epsg:4326")
        if not region.contains(extent):
            geobox = geobox.enclosing(region.intersection(extent).to_crs(geobox.crs))
    return geobox


def _undeclared_types(item: pystac.Item, keys: list[str], *, max_attempts: int, backoff: float) -> dict:
    """odc-stac's ``stac_cfg`` for assets whose data type the item does not declare (no ``raster:bands``), read
    from the item's files: odc-stac would load them as float32, turning digital numbers into "reflectance"."""
    assets = {}
    for key in keys:
        asset = item.assets[key].to_dict()
        declared = [asset, item.properties, *asset.get("raster:bands", []), *asset.get("bands", [])]
        if any("data_type" in d for d in declared):
            continue
        href = item.assets[key].get_absolute_href()

        def read_header(href=href):
            with rasterio.open(href) as src:
                return {"data_type": src.dtypes[0], "nodata": src.nodata}

        assets[key] = retry_reads(read_header, what=href, max_attempts=max_attempts, backoff=backoff)
    return {"*": {"assets": assets}} if assets else {}


def _solar_days(items: list[pystac.Item], geobox) -> dict[dt.date, list[pystac.Item]]:
    """Items by solar day at the grid's centre longitude: odc-stac's ``groupby="solar_day"``."""
    import odc.stac

    ((lon, _),) = geobox.extent.centroid.to_crs("epsg:4326").points
    days: dict[dt.date, list[pystac.Item]] = {}
    for item, parsed in zip(items, odc.stac.parse_items(items), strict=True):
        days.setdefault(parsed.solar_date_at(lon).date(), []).append(item)
    return dict(sorted(days.items()))


def _write_part(path: Path, data: np.ndarray, geobox, nodata) -> Path:
    """Write ``path`` + ``.part`` (a name `find_scenes` skips) and return it."""
    height, width = data.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": data.dtype.name,
               "nodata": nodata, "crs": geobox.crs.to_wkt(), "transform": geobox.transform,
               "compress": "deflate", "tiled": True, "blockxsize": 256, "blockysize": 256}
    part = path.with_name(path.name + ".part")
    with rasterio.open(part, "w", **profile) as dst:
        dst.write(data, 1)
    return part


def scale_offset(asset: pystac.Asset) -> tuple[float, float] | None:
    """The (scale, offset) from stored numbers to reflectance that the asset declares (raster extension: in
    ``raster:bands`` or, in STAC 1.1, as ``raster:scale`` / ``raster:offset``), None if it declares neither."""
    fields = asset.extra_fields
    declared = [fields, *fields.get("bands", [])[:1]]
    scale = next((d["raster:scale"] for d in declared if "raster:scale" in d), None)
    offset = next((d["raster:offset"] for d in declared if "raster:offset" in d), None)
    first = (fields.get("raster:bands") or [{}])[0]
    scale, offset = first.get("scale", scale), first.get("offset", offset)
    return None if scale is None and offset is None else (float(1.0 if scale is None else scale), float(offset or 0))


def as_reflectance(data: np.ndarray, nodata: float | None, scale: float, offset: float) -> np.ndarray:
    """``data * scale + offset`` as float32, NaN where ``data`` is nodata, 0 (no item there) or, for an integer
    type, its maximum (saturated): Landsat Collection 2 (scale 2.75e-5, offset -0.2) and Sentinel-2 from processing
    baseline 04.00 (offset -0.1) come out as the reflectance the pipeline reads floats as."""
    invalid = (data == 0) | (data == nodata) if nodata is not None else data == 0
    if data.dtype.kind in "iu":
        invalid |= data == np.iinfo(data.dtype).max
    return np.where(invalid, np.nan, data.astype("float32") * np.float32(scale) + np.float32(offset)).astype("float32")


def _day_writer(folder: Path, names: dict[str, str], masks: set[str], geobox, env: rasterio.Env, stac_cfg: dict):
    """A function writing the scene of some items of one day, and one checking that an item reads."""
    import odc.stac

    resampling = {key: "nearest" if key in masks else "average" for key in names}

    def load(items: list[pystac.Item]):
        with env:
            return odc.stac.load(items, bands=list(names), geobox=geobox, groupby="solar_day", resampling=resampling,
                                 chunks={"x": CHUNK_PX, "y": CHUNK_PX}, stac_cfg=stac_cfg).isel(time=0)

    def write(items: list[pystac.Item], stem: str) -> list[str]:
        """Band by band into .part files, renamed once all are written: a day appears whole or not at all."""
        day, parts = load(items), []
        try:
            for key, band in names.items():
                data, nodata = day[key].values, day[key].attrs.get("nodata")
                if band == "QA_PIXEL":
                    data, nodata, band = fmask_from_qa_pixel(data), 255, "FMASK"
                elif key not in masks and (transform := scale_offset(items[0].assets[key])) is not None:
                    data, nodata = as_reflectance(data, nodata, *transform), float("nan")
                elif nodata is None:
                    nodata = 0 if data.dtype.kind in "iu" else float("nan")
                parts.append(_write_part(folder / f"{stem}_{band}.tif", data, geobox, nodata))
            for part in parts:
                os.replace(part, part.with_suffix(""))
        finally:
            for part in parts:
                part.unlink(missing_ok=True)
        return [str(part.with_suffix("")) for part in parts]

    def check(item: pystac.Item) -> None:
        day = load([item])
        for key in names:
            day[key].compute()

    return write, check


def _prefix(item: pystac.Item) -> str:
    text = f"{item.properties.get('platform', '')} {item.collection_id or ''}".lower()
    return "LANDSAT" if "landsat" in text else "S2" if "sentinel-2" in text else "STAC"


def _select(item: pystac.Item, bands: list[str] | None) -> tuple[dict[str, str], set[str]]:
    """Asset key to band name of what to load (``bands`` by band name or asset key, plus the mask), and the
    mask keys."""
    names = band_names(item)
    masks = {k for k in names if is_mask(k, item.assets[k])}
    if bands:
        wanted = {b.upper() for b in bands}
        chosen = {k: n for k, n in names.items() if k in masks or n in wanted or k.upper() in wanted}
        missing = wanted - {n for n in chosen.values()} - {k.upper() for k in chosen}
        if missing:
            known = ", ".join(f"{k} ({n})" for k, n in names.items())
            raise BadInputError(f"STAC item {item.id} has no band {', '.join(sorted(missing))}; its known assets are "
                                f"{known or 'none'}: pass --bands some of them")
        names = chosen
    if not set(names) - masks:
        raise BadInputError(f"STAC item {item.id} has no reflectance asset named like a band (B04, red, nir08 ...); "
                            f"its assets are {', '.join(item.assets)}")
    return names, masks & set(names)


def fetch_stac_scenes(folder: str | Path, *, stac: str, collection: str | None = None,
                      bbox: tuple[float, float, float, float] | None = None, time_from: str | None = None,
                      time_to: str | None = None, max_cloud: float | None = None, bands: list[str] | None = None,
                      resolution: float | None = None, max_attempts: int = 4, backoff: float = 1.0) -> dict:
    """Write the scenes of the STAC items in ``bbox`` (lon/lat), [time_from, time_to] and under ``max_cloud``
    percent cloud into ``folder``, one scene per solar day on one grid (``resolution`` in the grid CRS's units).

    Returns the files written (``paths``), the ids of the items written (``items``), the items left out after
    their retries (``failed``: item id and a one-line error) and the days written (``days``, YYYY-MM-DD).
    """
    if bbox is not None and (len(bbox) != 4 or not (bbox[0] < bbox[2] and bbox[1] < bbox[3])):
        raise BadInputError(f"bbox {bbox} must be (min_lon, min_lat, max_lon, max_lat) with min < max")
    if max_attempts < 1:
        raise BadInputError(f"max_attempts {max_attempts} must be at least 1")
    items = find_items(stac, collection=collection, bbox=bbox, time_from=time_from, time_to=time_to,
                       max_cloud=max_cloud, max_attempts=max_attempts, backoff=backoff)
    names, masks = _select(items[0], bands)
    reflectance = [k for k in names if k not in masks]
    env, retry = _gdal_env(max_attempts, backoff), {"max_attempts": max_attempts, "backoff": backoff}
    unreadable: list[tuple[str, str]] = []
    for reference in items:  # the first item whose files open gives what the metadata may not say
        try:
            with env:
                geobox = _grid(items, reference, reflectance, bbox=bbox, resolution=resolution, **retry)
                stac_cfg = _undeclared_types(reference, list(names), **retry)
            break
        except (RasterioError, OSError) as exc:
            unreadable.append((reference.id, _one_line(exc)))
    else:
        raise _none_readable(stac, len(items), *unreadable[0])
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    write, check = _day_writer(out, names, masks, geobox, env, stac_cfg)
    prefix = _prefix(items[0])
    log.info("STAC: %d item(s) from %s on %s at %g, bands %s", len(items), stac, geobox.crs,
             abs(geobox.resolution.x), ", ".join(names.values()))

    result: dict = {"paths": [], "items": [], "failed": [], "days": []}
    for day, day_items in _solar_days(items, geobox).items():
        stem = f"{prefix}_{day:%Y%m%d}"
        try:
            paths = retry_reads(partial(write, day_items, stem), what=stem, **retry)
        except (RasterioError, OSError) as exc:
            log.warning("STAC day %s failed (%s); checking its %d item(s) one by one", day, _one_line(exc),
                        len(day_items))
            readable = []
            for item in day_items:
                try:
                    retry_reads(partial(check, item), what=item.id, **retry)
                    readable.append(item)
                except (RasterioError, OSError) as item_exc:
                    result["failed"].append({"item": item.id, "error": _one_line(item_exc)})
            if not readable:
                continue
            paths = retry_reads(partial(write, readable, stem), what=stem, **retry)
            day_items = readable
        result["paths"] += paths
        result["items"] += [i.id for i in day_items]
        result["days"].append(day.isoformat())
        log.info("STAC day %s: %d item(s) -> %s_*.tif", day, len(day_items), stem)
    if not result["items"]:
        raise _none_readable(stac, len(items), result["failed"][0]["item"], result["failed"][0]["error"])
    return result


def _none_readable(stac: str, count: int, item: str, error: str) -> BadInputError:
    return BadInputError(f"none of the {count} STAC item(s) from {stac} could be read (first: {item}: {error}); "
                         "check that their asset URLs answer, or retry later")
