"""The STAC source against real pystac catalogs, served as files and by a tiny STAC API on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import dask
import numpy as np
import pystac
import pytest
import rasterio
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from rasterio.errors import RasterioIOError
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds

from tasks.errors import BadInputError
from tasks.satellite import stac as stacsrc
from tasks.satellite.sources import find_scenes
from tests.stac_server import StacServer

SIZE, RES, EPSG = 64, 10.0, 32632
X0, Y0 = 600_000.0, 5_000_000.0
KEYS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08"}  # Earth Search's asset keys
LANDSAT_KEYS = {"blue": "B2", "green": "B3", "red": "B4", "nir08": "B5"}  # Landsat 8/9 band numbers
# id, time, tile column (tile 1 is east of tile 0), cloud cover: two tiles on 5 January, one on 10 January
ITEMS = [("S2A_T0_20240105", "2024-01-05T10:30:00+00:00", 0, 10.0),
         ("S2A_T1_20240105", "2024-01-05T10:30:04+00:00", 1, 50.0),
         ("S2B_T0_20240110", "2024-01-10T10:30:00+00:00", 0, 80.0)]
FAST = {"max_attempts": 3, "backoff": 0.01}


def band_values(item: int, band: int) -> np.ndarray:
    rows = np.arange(SIZE, dtype=np.uint16)[:, None] * np.ones((1, SIZE), np.uint16)
    return (1000 + 1000 * band + 100 * item + rows).astype(np.uint16)


def scl_values() -> np.ndarray:
    """Vegetation (4), with high cloud (9) on the first 8 rows and cloud shadow (3) on the first 4 columns."""
    scl = np.full((SIZE, SIZE), 4, np.uint8)
    scl[:8], scl[:, :4] = 9, 3
    return scl


def qa_pixel_values() -> np.ndarray:
    """Landsat QA_PIXEL: clear (bit 6), with cloud and dilated cloud (bits 3, 1) on the first 8 rows and cloud
    shadow (bit 4) on the first 4 columns."""
    qa = np.full((SIZE, SIZE), 1 << 6, np.uint16)
    qa[:8], qa[:, :4] = 1 << 3 | 1 << 1, 1 << 4
    return qa


def write_tif(path: Path, data: np.ndarray, column: int, nodata: int = 0) -> None:
    transform = from_origin(X0 + column * SIZE * RES, Y0, RES, RES)
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=1, dtype=data.dtype.name,
                       crs=f"EPSG:{EPSG}", transform=transform, nodata=nodata) as dst:
        dst.write(data, 1)


def build_catalog(root: Path, *, landsat: bool = False) -> Path:
    """Three Sentinel-2-like (or Landsat-like) items with eo, proj and raster:bands in a self-contained catalog with
    relative asset hrefs. The mask asset declares no data type, as many catalogs do."""
    (root / "data").mkdir(parents=True)
    catalog = pystac.Catalog("tessera-test", "a tiny catalog")
    extent = pystac.Extent(pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
                           pystac.TemporalExtent([[datetime.fromisoformat(ITEMS[0][1]), None]]))
    collection = pystac.Collection("landsat-c2-l2" if landsat else "sentinel-2-l2a", "test scenes", extent)
    catalog.add_child(collection)
    keys = LANDSAT_KEYS if landsat else KEYS
    for index, (item_id, when, column, cloud) in enumerate(ITEMS):
        left, top = X0 + column * SIZE * RES, Y0
        bbox = transform_bounds(f"EPSG:{EPSG}", "EPSG:4326", left, top - SIZE * RES, left + SIZE * RES, top)
        geometry = {"type": "Polygon", "coordinates": [[(bbox[0], bbox[1]), (bbox[2], bbox[1]), (bbox[2], bbox[3]),
                                                        (bbox[0], bbox[3]), (bbox[0], bbox[1])]]}
        platform = ("landsat-8", "landsat-9") if landsat else ("sentinel-2a", "sentinel-2b")
        item = pystac.Item(item_id, geometry, list(bbox), datetime.fromisoformat(when),
                           {"platform": platform[item_id.startswith("S2B")]})
        EOExtension.ext(item, add_if_missing=True).cloud_cover = cloud
        proj = ProjectionExtension.ext(item, add_if_missing=True)
        proj.epsg, proj.shape = EPSG, [SIZE, SIZE]
        proj.transform = list(from_origin(left, top, RES, RES))[:6]
        for number, (key, band) in enumerate(keys.items()):
            path = root / "data" / f"{item_id}_{band}.tif"
            write_tif(path, band_values(index, number), column)
            asset = pystac.Asset(str(path), media_type=pystac.MediaType.COG, roles=["data", "reflectance"])
            EOExtension.ext(asset).bands = [Band.create(name=band, common_name=key)]
            asset.extra_fields["raster:bands"] = [{"nodata": 0, "data_type": "uint16"}]
            item.add_asset(key, asset)
        path = root / "data" / f"{item_id}_mask.tif"
        if landsat:
            write_tif(path, qa_pixel_values(), column, nodata=1)
        else:
            write_tif(path, scl_values(), column)
        item.add_asset("qa_pixel" if landsat else "scl",
                       pystac.Asset(str(path), media_type=pystac.MediaType.COG, roles=["data", "cloud"]))
        collection.add_item(item)
    catalog.normalize_hrefs(str(root))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


@pytest.fixture(autouse=True)
def scoped_threads():
    """Dask computes on a pool that ends with the test, and the test leaves no thread running."""
    before = set(threading.enumerate())
    with ThreadPoolExecutor(4) as pool, dask.config.set(pool=pool):
        yield
    deadline = time.monotonic() + 5
    while (left := [t for t in threading.enumerate() if t not in before and t.is_alive()]) and (
            time.monotonic() < deadline):
        time.sleep(0.05)
    assert not left, f"threads left running: {left}"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_catalog(tmp_path_factory.mktemp("stac") / "catalog")


@pytest.fixture
def server(catalog: Path):
    served = StacServer(catalog.parent)
    served.thread.start()
    try:
        yield served
    finally:
        served.stop()


def names(result: dict) -> list[str]:
    return sorted(Path(p).name for p in result["paths"])


def test_band_names_map_common_names_and_pass_known_ones_through() -> None:
    s2 = pystac.Item("s2", None, None, datetime(2024, 1, 5), {"platform": "sentinel-2b"})
    landsat = pystac.Item("l9", None, None, datetime(2024, 1, 5), {"platform": "landsat-9"})
    landsat7 = pystac.Item("l7", None, None, datetime(2024, 1, 5), {"platform": "landsat-7"})
    for item, keys in ((s2, ("red", "nir08", "B8A", "scl", "visual", "aot")), (landsat, ("red", "qa_pixel", "lwir11")),
                       (landsat7, ("red", "nir08"))):
        for key in keys:
            item.add_asset(key, pystac.Asset(f"{key}.tif", roles=["data"]))
    assert stacsrc.band_names(s2) == {"red": "B04", "nir08": "B8A", "scl": "SCL"}  # one asset per band
    assert stacsrc.band_names(landsat) == {"red": "B4", "qa_pixel": "QA_PIXEL"}
    assert stacsrc.band_names(landsat7) == {"red": "B3", "nir08": "B4"}
    assert stacsrc.is_mask("qa_pixel", landsat.assets["qa_pixel"])
    assert stacsrc.is_mask("cloud", pystac.Asset("c.tif", roles=["data", "cloud"]))
    assert not stacsrc.is_mask("red", s2.assets["red"])


def test_qa_pixel_bits_become_fmask_classes() -> None:
    # fill, clear land (bit 6), water (7), cloud (3), shadow (4), snow (5), cirrus (2), dilated cloud (1)
    qa = np.array([1, 1 << 6, 1 << 7 | 1 << 6, 1 << 3, 1 << 4, 1 << 5, 1 << 2, 1 << 1], dtype=np.uint16)
    assert stacsrc.fmask_from_qa_pixel(qa).tolist() == [255, 0, 1, 4, 2, 3, 4, 4]


def test_static_catalog_from_a_local_path_reads_as_one_scene_per_day(catalog: Path, tmp_path: Path) -> None:
    result = stacsrc.fetch_stac_scenes(tmp_path / "in", stac=str(catalog), **FAST)

    assert result["items"] == [i[0] for i in ITEMS] and result["failed"] == []
    assert result["days"] == ["2024-01-05", "2024-01-10"]
    assert names(result) == sorted(f"S2_{d}_{b}.tif" for d in ("20240105", "20240110")
                                   for b in ("B02", "B03", "B04", "B08", "SCL"))
    scenes = {s.scene: s for s in find_scenes(str(tmp_path / "in"))}
    assert sorted(scenes) == ["S2_20240105", "S2_20240110"]
    for scene in scenes.values():
        assert sorted(scene.bands) == ["B02", "B03", "B04", "B08"] and scene.mask_kind == "SCL"
    with rasterio.open(scenes["S2_20240105"].bands["B04"][0]) as src:  # both tiles of the day, side by side
        assert src.crs.to_epsg() == EPSG and src.res == (RES, RES) and src.shape == (SIZE, 2 * SIZE)
        day = src.read(1)
    np.testing.assert_array_equal(day[:, :SIZE], band_values(0, 2))
    np.testing.assert_array_equal(day[:, SIZE:], band_values(1, 2))
    with rasterio.open(scenes["S2_20240110"].mask) as src:  # the second day's tile only: SCL 0 (no data) east
        scl = src.read(1)
    np.testing.assert_array_equal(scl[:, :SIZE], scl_values())
    assert (scl[:, SIZE:] == 0).all()


def test_static_catalog_filters_by_time_and_cloud(catalog: Path, tmp_path: Path) -> None:
    result = stacsrc.fetch_stac_scenes(tmp_path, stac=str(catalog.parent), time_from="2024-01-06",
                                       time_to="2024-01-10", bands=["B04", "nir"], **FAST)
    assert result["items"] == ["S2B_T0_20240110"]
    assert names(result) == ["S2_20240110_B04.tif", "S2_20240110_B08.tif", "S2_20240110_SCL.tif"]
    with pytest.raises(BadInputError, match=r"found no items .*under 5% cloud; widen --bbox"):
        stacsrc.fetch_stac_scenes(tmp_path, stac=str(catalog), max_cloud=5, **FAST)


def test_landsat_items_get_landsat_band_numbers_and_fmask(tmp_path: Path) -> None:
    catalog = build_catalog(tmp_path / "landsat", landsat=True)
    result = stacsrc.fetch_stac_scenes(tmp_path / "in", stac=str(catalog), time_from="2024-01-10", **FAST)
    assert names(result) == [f"LANDSAT_20240110_{b}.tif" for b in ("B2", "B3", "B4", "B5", "FMASK")]
    (scene,) = find_scenes(str(tmp_path / "in"))
    assert sorted(scene.bands) == ["B2", "B3", "B4", "B5"] and scene.mask_kind == "FMASK"
    with rasterio.open(scene.mask) as src:
        fmask = src.read(1)
    expected = np.zeros((SIZE, SIZE), np.uint8)
    expected[:8], expected[:, :4] = 4, 2
    np.testing.assert_array_equal(fmask[:, :SIZE], expected)
    assert (fmask[:, SIZE:] == 255).all()  # no item east: fill


def test_declared_scale_and_offset_give_float_reflectance(tmp_path: Path) -> None:
    """Landsat Collection 2 surface reflectance: stored x 2.75e-5 - 0.2, as its raster:bands say."""
    catalog = build_catalog(tmp_path / "landsat", landsat=True)
    root = pystac.Catalog.from_file(str(catalog))
    for item in root.get_items(recursive=True):
        for key, asset in item.assets.items():
            if key != "qa_pixel":
                asset.extra_fields["raster:bands"] = [{"nodata": 0, "data_type": "uint16", "scale": 2.75e-5,
                                                       "offset": -0.2}]
        item.save_object()
    result = stacsrc.fetch_stac_scenes(tmp_path / "in", stac=str(catalog), time_from="2024-01-10", **FAST)
    with rasterio.open(next(p for p in result["paths"] if p.endswith("_B4.tif"))) as src:
        red, dtype = src.read(1), src.dtypes[0]
    assert dtype == "float32"
    np.testing.assert_allclose(red[:, :SIZE], band_values(2, 2) * 2.75e-5 - 0.2, rtol=1e-6)
    assert np.isnan(red[:, SIZE:]).all()  # no item east: no reflectance


def test_scale_offset_from_either_version_of_the_raster_extension() -> None:
    old = pystac.Asset("b.tif", extra_fields={"raster:bands": [{"scale": 0.0001, "offset": -0.1}]})
    new = pystac.Asset("b.tif", extra_fields={"raster:scale": 2.75e-5, "raster:offset": -0.2})
    assert stacsrc.scale_offset(old) == (0.0001, -0.1) and stacsrc.scale_offset(new) == (2.75e-5, -0.2)
    assert stacsrc.scale_offset(pystac.Asset("b.tif", extra_fields={"raster:bands": [{"nodata": 0}]})) is None
    data = np.array([0, 1000, 65535], np.uint16)
    np.testing.assert_allclose(stacsrc.as_reflectance(data, 0, 0.0001, -0.1), [np.nan, 0.0, np.nan], atol=1e-7)


@pytest.mark.integration
def test_static_catalog_over_http(server: StacServer, tmp_path: Path) -> None:
    result = stacsrc.fetch_stac_scenes(tmp_path, stac=f"{server.url}/catalog.json", **FAST)
    assert result["items"] == [i[0] for i in ITEMS] and len(result["paths"]) == 10
    assert server.hits["/sentinel-2-l2a/collection.json"] >= 1
    assert server.hits["/data/S2B_T0_20240110_B04.tif"] >= 1  # read over HTTP, not from the local path


@pytest.mark.integration
def test_api_search_filters_by_cloud_and_bbox(server: StacServer, tmp_path: Path) -> None:
    api = f"{server.url}/api"
    result = stacsrc.fetch_stac_scenes(tmp_path / "cloud", stac=api, collection="sentinel-2-l2a", max_cloud=60,
                                       time_from="2024-01-01", time_to="2024-01-31", **FAST)
    assert result["items"] == ["S2A_T0_20240105", "S2A_T1_20240105"] and result["days"] == ["2024-01-05"]
    assert server.searches[0]["query"] == {"eo:cloud_cover": {"lt": 60}}  # filtered by the API, not here

    east = server.items[1]["bbox"]  # inside tile 1 only, a little away from its edges
    inner = (east[0] + 0.001, east[1] + 0.001, east[2] - 0.001, east[3] - 0.001)
    result = stacsrc.fetch_stac_scenes(tmp_path / "bbox", stac=api, collection="sentinel-2-l2a", bbox=inner, **FAST)
    assert result["items"] == ["S2A_T1_20240105"]
    with rasterio.open(result["paths"][0]) as src:
        assert src.shape[0] < SIZE and src.shape[1] < SIZE and src.bounds.left >= X0 + SIZE * RES - RES


@pytest.mark.integration
def test_api_search_finding_nothing_says_what_and_how_to_fix(server: StacServer, tmp_path: Path) -> None:
    with pytest.raises(BadInputError) as caught:
        stacsrc.fetch_stac_scenes(tmp_path, stac=f"{server.url}/api", collection="sentinel-2-l2a",
                                  bbox=(-10.0, 40.0, -9.0, 41.0), time_from="2024-01-01", time_to="2024-01-31",
                                  max_cloud=30, **FAST)
    message = str(caught.value)
    assert "\n" not in message
    assert message == (f"STAC search of {server.url}/api found no items collection sentinel-2-l2a in bbox (-10.0, "
                       "40.0, -9.0, 41.0) between 2024-01-01 and 2024-01-31 under 30% cloud; widen --bbox or "
                       "--time-from/--time-to, raise --max-cloud or check --collection")
    assert not list(tmp_path.iterdir())


@pytest.mark.integration
def test_a_5xx_served_once_is_retried(server: StacServer, tmp_path: Path) -> None:
    asset, item = "/data/S2A_T0_20240105_B04.tif", "/sentinel-2-l2a/S2A_T0_20240105/S2A_T0_20240105.json"
    server.failures.update({asset: 1, item: 1})
    result = stacsrc.fetch_stac_scenes(tmp_path, stac=f"{server.url}/catalog.json", **FAST)
    assert result["failed"] == [] and len(result["items"]) == 3
    assert server.failures == {asset: 0, item: 0} and server.hits[asset] >= 2 and server.hits[item] == 2


@pytest.mark.integration
def test_an_asset_that_always_fails_is_named_and_the_rest_written(server: StacServer, tmp_path: Path) -> None:
    server.failures["/data/S2A_T0_20240105_B04.tif"] = -1  # the western tile of 5 January
    result = stacsrc.fetch_stac_scenes(tmp_path, stac=f"{server.url}/catalog.json", **FAST)
    assert result["items"] == ["S2A_T1_20240105", "S2B_T0_20240110"]
    assert result["days"] == ["2024-01-05", "2024-01-10"]
    assert [f["item"] for f in result["failed"]] == ["S2A_T0_20240105"]
    assert "500" in result["failed"][0]["error"] and "\n" not in result["failed"][0]["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names(result)  # no .part file left
    scenes = {s.scene: s for s in find_scenes(str(tmp_path))}
    assert sorted(scenes) == ["S2_20240105", "S2_20240110"]
    with rasterio.open(scenes["S2_20240105"].bands["B03"][0]) as src:  # 5 January from its eastern tile alone
        day = src.read(1)
    assert (day[:, :SIZE] == 0).all()
    np.testing.assert_array_equal(day[:, SIZE:], band_values(1, 1))


def test_a_local_file_not_yet_recognised_is_read_again(tmp_path: Path) -> None:
    path, calls = tmp_path / "late.tif", []
    path.write_bytes(b"still being copied")

    def read() -> int:
        calls.append(1)
        if len(calls) == 2:
            write_tif(path, band_values(0, 0), 0)
        with rasterio.open(path) as src:
            return int(src.read(1)[0, 0])

    assert stacsrc.retry_reads(read, what="late.tif", max_attempts=3, backoff=0.01) == 1000
    assert len(calls) == 2
    with pytest.raises(RasterioIOError):  # a missing file is not waited for
        stacsrc.retry_reads(lambda: rasterio.open(tmp_path / "missing.tif"), what="x", max_attempts=3, backoff=0.01)


def test_every_item_failing_is_bad_input(tmp_path: Path) -> None:
    broken = build_catalog(tmp_path / "broken")
    for tif in (broken.parent / "data").glob("*.tif"):
        tif.write_bytes(b"not a tiff")
    with pytest.raises(BadInputError, match=r"none of the 3 STAC item\(s\) from .* could be read \(first: S2A_T0_"):
        stacsrc.fetch_stac_scenes(tmp_path / "in", stac=str(broken), max_attempts=2, backoff=0.01)
    assert not list((tmp_path / "in").glob("*"))
