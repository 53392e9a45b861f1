"""The files of a satellite run folder."""

from __future__ import annotations

from tasks.runs import RunFiles, run_file


class SatelliteFiles(RunFiles):
    ingest = run_file("ingest.json", "the scenes and labels found")
    scenes = run_file("scenes.parquet", "one row per band file of every scene")
    scene_profile = run_file("scene_profile.parquet", "the scenes that passed, one row per scene, for the gate")
    mosaic = run_file("mosaic.zarr", "the mosaic on one grid, with the labels and spatial blocks")
    normalization = run_file("normalization.json", "band means and deviations of the training pixels")
    mosaic_profile = run_file("mosaic_profile.parquet", "one row per band of the mosaic, for the gate")
    explanation_chips = run_file("explanations.npz", "image chips with their saliency maps")
    classmap = run_file("classmap.tif", "the class map (COG)")
    confidence = run_file("confidence.tif", "the probability of the mapped class (COG)")
    uncertainty = run_file("uncertainty.tif", "the Monte Carlo dropout spread (COG)")
    change = run_file("change.tif", "pixels whose class changed since the previous run (COG)")
    monitor = run_file("monitor.json", "change and drift against the previous run and the reference")
