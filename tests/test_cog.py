"""COG writing: grid, values and nodata kept, several layers from one computation, block by block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine

from tasks import cog


class TestWriteCog:
    transform = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_000_000.0)

    def class_map(self, *, lazy: bool = False) -> xr.DataArray:
        values = (np.arange(40 * 24) % 7).astype("uint8").reshape(40, 24)
        x = 500_000.0 + 5.0 + 10.0 * np.arange(24)
        y = 5_000_000.0 - 5.0 - 10.0 * np.arange(40)
        da = xr.DataArray(values, dims=("y", "x"), coords={"y": y, "x": x})
        da = da.rio.write_crs("EPSG:32632").rio.write_transform(self.transform)
        return da.chunk({"y": 16, "x": 16}) if lazy else da

    def test_grid_and_values_are_preserved(self, tmp_path: Path) -> None:
        da = self.class_map()
        uri = cog.write_cog(da, tmp_path / "classes.tif")
        assert uri == str(tmp_path / "classes.tif")
        with rasterio.open(uri) as src:
            assert src.transform == self.transform
            assert src.crs.to_epsg() == 32632
            assert (src.height, src.width) == (40, 24)
            np.testing.assert_array_equal(src.read(1), da.values)

    def test_nodata_set_on_the_array_is_kept(self, tmp_path: Path) -> None:
        uri = cog.write_cog(self.class_map().rio.write_nodata(255), tmp_path / "classes.tif")
        with rasterio.open(uri) as src:
            assert src.nodata == 255

    def test_nodata_argument_is_written(self, tmp_path: Path) -> None:
        uri = cog.write_cog(self.class_map(), tmp_path / "classes.tif", nodata=255)
        with rasterio.open(uri) as src:
            assert src.nodata == 255

    def test_layout_is_cog(self, tmp_path: Path) -> None:
        uri = cog.write_cog(self.class_map(), tmp_path / "classes.tif")
        with rasterio.open(uri) as src:
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert src.profile["tiled"]

    def test_dask_input_is_written_and_no_staging_files_remain(self, tmp_path: Path) -> None:
        da = self.class_map(lazy=True)
        cog.write_cog(da, tmp_path / "classes.tif")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.tif"]
        with rasterio.open(tmp_path / "classes.tif") as src:
            np.testing.assert_array_equal(src.read(1), da.values)

    def test_layers_of_one_computation_compute_each_block_once(self, tmp_path: Path) -> None:
        import dask

        calls = []

        def score(block: np.ndarray) -> np.ndarray:
            calls.append(block.shape)
            return np.stack([block, block * 2]).astype("float32")

        base = self.class_map(lazy=True)
        both = base.data.map_blocks(score, new_axis=0, chunks=((2,),) + base.data.chunks,
                                    meta=np.array((), dtype="float32"))
        first, second = (base.copy(data=both[i]) for i in range(2))
        with dask.config.set(scheduler="synchronous"):
            written = cog.write_cogs({str(tmp_path / "a.tif"): (first, None), str(tmp_path / "b.tif"): (second, -1)},
                                       batch=2)
        assert written == [str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]
        assert len(calls) == len(base.data.chunks[0]) * len(base.data.chunks[1]) == 6
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "b.tif"]
        with rasterio.open(tmp_path / "b.tif") as src:
            np.testing.assert_array_equal(src.read(1), base.values * 2)
            assert src.nodata == -1

    def test_layers_on_different_chunks_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="same shape and chunks"):
            cog.write_cogs({str(tmp_path / "a.tif"): (self.class_map(lazy=True), None),
                              str(tmp_path / "b.tif"): (self.class_map(lazy=True).chunk({"y": 8}), None)})
        assert list(tmp_path.iterdir()) == []
