"""``tessera run satellite --source stac``: the example's four Sentinel-2-like tiles as STAC items searched through
a STAC API on 127.0.0.1, then the same gates, mosaic and model as the local source."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pystac
import pytest
import rasterio
from pystac.extensions.eo import EOExtension
from pystac.extensions.projection import ProjectionExtension
from rasterio.warp import transform_bounds

from tests.stac_server import StacServer


def catalog_of(scenes: Path, root: Path) -> Path:
    """A self-contained catalog in ``root`` with one item per tile of ``scenes`` (``S2_<tile>_<date>_<band>.tif``,
    moved to ``root/data``), every band file an asset named for its band, the SCL layer a cloud asset."""
    (root / "data").mkdir(parents=True)
    for path in scenes.glob("S2_*.tif"):
        path.rename(root / "data" / path.name)
    scenes = root / "data"
    catalog = pystac.Catalog("example", "the satellite example's tiles")
    extent = pystac.Extent(pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
                           pystac.TemporalExtent([[datetime(2024, 6, 1), None]]))
    collection = pystac.Collection("sentinel-2-l2a", "example tiles", extent)
    catalog.add_child(collection)
    for stem in sorted({path.name.rsplit("_", 1)[0] for path in scenes.glob("S2_*.tif")}):
        with rasterio.open(scenes / f"{stem}_B02.tif") as src:
            bbox = list(transform_bounds(src.crs, "EPSG:4326", *src.bounds))
            epsg = src.crs.to_epsg()
        geometry = {"type": "Polygon", "coordinates": [[(bbox[0], bbox[1]), (bbox[2], bbox[1]), (bbox[2], bbox[3]),
                                                        (bbox[0], bbox[3]), (bbox[0], bbox[1])]]}
        item = pystac.Item(stem, geometry, bbox, datetime.fromisoformat("2024-06-01T10:30:00+00:00"),
                           {"platform": "sentinel-2a"})
        EOExtension.ext(item, add_if_missing=True).cloud_cover = 5.0
        ProjectionExtension.ext(item, add_if_missing=True).epsg = epsg
        for path in sorted(scenes.glob(f"{stem}_*.tif")):
            band = path.stem.rsplit("_", 1)[1]
            asset = pystac.Asset(str(path.resolve()), media_type=pystac.MediaType.GEOTIFF,
                                 roles=["data", "cloud"] if band == "SCL" else ["data", "reflectance"])
            item.add_asset(band, asset)
            with rasterio.open(path) as src:  # each asset's own grid, as Earth Search gives it (10 m and 20 m)
                proj = ProjectionExtension.ext(asset)
                proj.shape, proj.transform = [src.height, src.width], list(src.transform)[:6]
        collection.add_item(item)
    catalog.normalize_hrefs(str(root))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


@pytest.mark.integration
@pytest.mark.slow
def test_a_stac_api_search_runs_through_the_satellite_pipeline(tessera_run, tessera_example, tmp_path: Path) -> None:
    example = tessera_example("satellite")
    catalog_of(Path(example["input"]), tmp_path / "catalog")
    server = StacServer(tmp_path / "catalog")
    server.thread.start()
    try:
        result = tessera_run("satellite", source="stac", stac=f"{server.url}/api", collection="sentinel-2-l2a",
                             bbox=[-180, -80, 180, 80], time_from="2024-05-01", time_to="2024-06-30", max_cloud=20,
                             labels=example["labels"])
    finally:
        server.stop()
    assert result.exit_code == 0, result.error
    record = result.record
    assert record["inputs"]["stac"]["days"] == ["2024-06-01"] and len(record["inputs"]["stac"]["items"]) == 4
    assert record["inputs"]["stac"]["failed"] == []
    assert server.searches and server.searches[0]["collections"] in (["sentinel-2-l2a"], "sentinel-2-l2a")
    assert record["counts"]["records_in"] == 1  # the four tiles of one solar day fused into one scene
    assert all(gate["success"] for gate in record["quality"])
    assert record["metrics"]["macro_f1"] > 0 and set(record["baselines"]) == {"pixel_logreg"}
