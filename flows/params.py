"""The parameters of each pipeline, declared once as a Pydantic model: the flow's one parameter, the form the
Prefect UI shows for its deployment, and the CLI's options (flows/options.py).

Each field has a description, its choices and numeric bounds, so the form starts a sensible run as it is and a bad
value is refused before a run starts. The options every pipeline shares are declared in :class:`RunOptions`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from models.tuning import TUNE
from tasks.store import NAME_PATTERN

Train = Literal["auto", "always", "never"]
Calibration = Literal["platt", "isotonic"]
CleanStep = Literal["normalize_unicode", "lowercase", "replace_urls", "replace_mentions", "keep_hashtag_words",
                    "replace_numbers", "emoji_to_words", "shorten_elongations", "remove_stopwords", "lemmatize"]
Resampling = Literal["nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode", "gauss", "max",
                     "min", "med", "q1", "q3", "sum", "rms"]

TRAIN = "auto: train when no champion model exists; always: train a challenger; never: score with the champion"
OUT = "data root for runs and models (empty: TESSERA_DATA of the serving process, else ./data)"
DASK = "scheduler address of an existing Dask cluster, e.g. tcp://host:8786 (empty: a local cluster)"
RUN_ID = "reuse the id of an interrupted run to resume it from its completed stages (empty: a new run)"
SEED = "random seed of splits, synthetic data and training"
CALIBRATE = "calibrate probabilities on the validation split (empty: off; the report shows before and after)"
MC_SAMPLES = ("Monte Carlo dropout passes per prediction, for an uncertainty per prediction (market: 90% forecast "
              "intervals and their coverage) (0: off; 20-50 is typical)")
MLFLOW = ("MLflow tracking URI to log the run to, e.g. http://127.0.0.1:5000 (empty: MLFLOW_TRACKING_URI if set, "
          "else no tracking)")
BUNDLE = ("a model bundle (tessera models export) to score with instead of the registry's champion; the run trains "
          "nothing (empty: the registry)")
MODEL_NAME = "model registry name"
FOLDS = "stratified k-fold cross-validation on train+val (0: off)"


def own_fields_first(model: type[BaseModel]) -> list[str]:
    """The model's field names, those it declares itself before those of its bases (shared options last)."""
    level = {}
    for depth, cls in enumerate(model.__mro__):
        for name in cls.__dict__.get("__annotations__", {}):
            level.setdefault(name, depth)
    return sorted(model.model_fields, key=lambda name: level.get(name, 0))


def _form_order(schema: dict, model: type[BaseModel]) -> None:
    schema["properties"] = {name: schema["properties"][name] for name in own_fields_first(model)
                            if name in schema["properties"]}


class PipelineParams(BaseModel):
    """Base of the parameter models: an unknown field is an error, not silently ignored; the UI's form lists a
    domain's own fields before the shared ones."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_form_order)


class RunOptions(PipelineParams):
    """The options every pipeline shares; the CLI lists them after the domain's own."""

    train: Train = Field("auto", description=TRAIN)
    seed: int = Field(0, ge=0, description=SEED)
    mc_samples: int = Field(0, ge=0, le=1000, description=MC_SAMPLES)
    tune: int = Field(0, ge=0, le=500, description=TUNE)
    out: str | None = Field(None, description=OUT)
    dask_address: str | None = Field(None, description=DASK)
    run_id: str | None = Field(None, pattern=NAME_PATTERN, description=RUN_ID)
    mlflow: str | None = Field(None, description=MLFLOW)
    bundle: str | None = Field(None, description=BUNDLE)


class ClassifierOptions(RunOptions):
    """The options of the pipelines that train a classifier."""

    calibrate: Calibration | None = Field(None, description=CALIBRATE)


def epochs_field(default: int, what: str = "training epochs") -> FieldInfo:
    """The epochs field, with the domain's default."""
    return Field(default, ge=1, le=1000, description=what)


def model_name_field(default: str) -> FieldInfo:
    """The model name field, with the domain's default."""
    return Field(default, pattern=NAME_PATTERN, description=MODEL_NAME)


class SatelliteParams(ClassifierOptions):
    """Satellite monitoring: scenes to a gated mosaic, a CNN class map, change and drift."""

    source: Literal["synthetic", "local", "sentinelhub", "stac"] = Field(
        "synthetic", description="where scenes come from: the synthetic area, local files, Sentinel Hub, or a STAC "
                                 "API or catalog")
    input: str | None = Field(None, description="folder or glob of GeoTIFF/JP2 files (source local)")
    labels: str | None = Field(None, description="label polygons (GeoPackage/GeoJSON/Shapefile) or a label raster")
    label_column: str = Field("class", min_length=1, description="class column of the label polygons")
    date: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$",
                             description="acquisition date of the synthetic scenes, YYYY-MM-DD (empty: today)")
    bbox: list[float] | None = Field(None, min_length=4, max_length=4, json_schema_extra={"split": "comma"},
                                     description="min_lon, min_lat, max_lon, max_lat in WGS84 (sources sentinelhub, "
                                                 "stac)")
    time_from: str | None = Field(None, description="start of the time range, YYYY-MM-DD (sources sentinelhub, stac)")
    time_to: str | None = Field(None, description="end of the time range, YYYY-MM-DD (sources sentinelhub, stac)")
    stac: str | None = Field(None, description="a STAC API root URL, or a static catalog.json / collection.json as a "
                             "path or URL (source stac)")
    collection: str | None = Field(None, description="STAC collection id, e.g. sentinel-2-l2a (source stac)")
    max_cloud: float | None = Field(None, ge=0, le=100, description="only scenes under this cloud cover, in percent "
                                    "(source stac)")
    resolution: float | None = Field(None, gt=0, description="grid resolution in CRS units (empty: the finest band)")
    crs: str | None = Field(None, description="grid CRS, e.g. EPSG:32633 (empty: the first scene's)")
    bands: list[str] | None = Field(None, min_length=1, json_schema_extra={"split": "comma"},
                                    description="bands to use, e.g. B02, B03, B04, B08 "
                                    "(empty: every band the scenes share)")
    scale: float | None = Field(None, gt=0, description="reflectance per digital number (empty: 1e-4 for "
                                "integers, 1/255 for 8-bit)")
    mosaic_method: Literal["first", "median", "least-cloudy"] = Field(
        "first", json_schema_extra={"cli": "--mosaic"}, description="how overlapping scenes combine into the mosaic")
    mosaicking_order: Literal["leastCC", "mostRecent", "leastRecent"] = Field(
        "leastCC", description="which acquisition Sentinel Hub puts on top (source sentinelhub)")
    resampling: Resampling = Field("average", description="GDAL resampling of every band onto the grid")
    model_name: str | None = Field(None, pattern=NAME_PATTERN,
                                   description="model registry name (empty: satellite-AREA, AREA the area id)")
    model: Literal["unet", "fcn"] = Field(
        "unet", description="U-Net (two poolings, 53 x 53 pixels of context) or the three-layer "
                            "fully-convolutional network")
    epochs: int = epochs_field(30, "training epochs of the CNN")
    folds: int = Field(0, ge=0, le=20, description="blocked spatial cross-validation over the training blocks: "
                       "whole blocks held out in turn (0: off)")
    block: int = Field(64, ge=4, le=4096, description="side in pixels of the blocks of the spatial split")
    two_zones: bool = Field(False, description="synthetic: deliver one tile in the next UTM zone")
    psi_threshold: float = Field(0.2, ge=0, le=10, description="population stability index that flags drift")
    change_threshold: float = Field(0.05, ge=0, le=1, description="share of changed pixels that flags change")
    fail_on_drift: bool = Field(False, description="end the run failed when drift or change is flagged")


class GenomeParams(ClassifierOptions):
    """Genome: sequences to k-mer encodings to a regulatory-region classifier."""

    input: str | list[str] | None = Field(None, description="FASTA/FASTQ (gz too) or CSV id,label,sequence files, "
                                          "folders or globs (empty: the synthetic set)")
    labels: str | None = Field(None, description="CSV mapping id to label")
    label_from_filename: bool = Field(False, description="one input file per class, named for it")
    length: int = Field(200, ge=8, le=100_000, description="pad or truncate every sequence to this length")
    k: int = Field(4, ge=1, le=8, description="k-mer size")
    padding: Literal["right", "left", "centre"] = Field("centre", description="where short sequences are padded")
    model: Literal["poscnn", "cnn1d", "kmer2d"] = Field(
        "poscnn", description="position-aware 1D CNN, 1D CNN with global pooling, or 2D k-mer CNN")
    encoding: Literal["onehot", "kmer"] = Field("onehot", description="input of the 1D CNNs: bases or k-mer tokens")
    model_name: str = model_name_field("genome")
    epochs: int = epochs_field(20)
    folds: int = Field(0, ge=0, le=20, description=FOLDS)
    augment_rc: bool = Field(False, description="add reverse complements to the training split")
    min_length: int = Field(20, ge=1, description="quarantine shorter sequences")
    stride: int | None = Field(None, ge=1, description="step of the scoring window along long sequences")
    synthetic_n: int = Field(2000, ge=20, le=1_000_000, description="sequences in the synthetic set (no input)")


class SentimentParams(ClassifierOptions):
    """Sentiment: social-media posts to a hybrid TF-IDF + text CNN classifier."""

    input: str | None = Field(None, description="CSV, JSONL or Parquet of posts (empty: the synthetic set)")
    text_column: str | None = Field(None, description="text column (empty: text, content, post, tweet, review ...)")
    label_column: str | None = Field(None, description="label column (empty: label, sentiment, category ...)")
    encoding: str = Field("utf-8", min_length=1, description="text encoding of CSV/JSONL input")
    max_chars: int = Field(5000, ge=1, description="quarantine longer posts")
    clean_options: dict[CleanStep, bool] | None = Field(
        None, description="cleaning steps to turn off, e.g. {\"lemmatize\": false} (empty: every step on)")
    model_name: str = model_name_field("sentiment")
    max_tokens: int | None = Field(None, ge=1, le=10_000, description="tokens per post the CNN part reads, all of "
                                   "them the TF-IDF part (default: the 99th percentile of the training posts, 8-512)")
    epochs: int = epochs_field(15)
    synthetic_n: int = Field(3000, ge=20, le=1_000_000, description="posts in the synthetic set (no input)")
    folds: int = Field(0, ge=0, le=20, description=FOLDS)


class MarketParams(RunOptions):
    """Market: prices to leakage-free windows to an LSTM forecaster walked forward."""

    input: str | None = Field(None, description="CSV or Parquet, long (date,symbol,...) or wide (date,<symbol>...) "
                              "(empty: synthetic prices)")
    symbol: str | None = Field(None, description="symbol of a single series without a symbol column "
                               "(empty: the file name)")
    target: str | None = Field(None, description="price column to forecast (empty: adj close if present, else close)")
    date_column: str | None = Field(None, description="date column (empty: one named date, time, day ..., else "
                                    "the first column whose values are dates)")
    volume_column: str | None = Field(None, description="volume column (empty: volume, vol ..., else a traded "
                                      "value such as turnover; none is fine)")
    splits: Literal["adjust", "drop", "keep"] = Field(
        "adjust", description="stock splits found in unadjusted prices: adjust the prices before them, drop the "
        "windows across them, or keep them as real moves")
    lag: int = Field(20, ge=2, le=1000, description="window length in steps")
    horizon: int = Field(1, ge=1, le=365, description="steps ahead")
    folds: int = Field(3, ge=1, le=20, description="walk-forward folds")
    epochs: int = epochs_field(15, "training epochs per fold")
    hidden: int = Field(32, ge=1, le=1024, description="LSTM hidden units")
    cost: float = Field(0.0005, ge=0, le=0.1, description="cost per trade of the long/flat strategy")
    model_name: str = model_name_field("market")

