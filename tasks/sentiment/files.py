"""The files of a sentiment run folder."""

from __future__ import annotations

from tasks.runs import RunFiles, run_file


class SentimentFiles(RunFiles):
    posts = run_file("posts.parquet", "the posts as read, repaired text and labels")
    valid_posts = run_file("valid_posts.parquet", "the checked posts the run uses")
    posts_profile = run_file("posts_profile.parquet", "one row per post, for the gate")
    clean_posts = run_file("clean_posts.parquet", "the cleaned posts: text, tokens and lemmas")
    clean_profile = run_file("clean_profile.parquet", "one row per cleaned post, for the gate")
