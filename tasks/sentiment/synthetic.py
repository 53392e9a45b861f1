"""Synthetic social-media posts whose sentiment is carried by words, negations, emoji and emoticons, with the
noise of the real thing: URLs, @mentions, #hashtags, elongated words, mixed case and duplicates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

POSITIVE = ["love", "great", "amazing", "happy", "awesome", "excellent", "wonderful", "enjoyed", "best", "nice"]
NEGATIVE = ["hate", "terrible", "awful", "sad", "horrible", "worst", "boring", "disappointed", "broken", "bad"]
NEUTRAL = ["today", "update", "meeting", "weather", "train", "news", "report", "schedule", "office", "lunch"]
TOPICS = ["the new phone", "this movie", "the service", "my order", "the concert", "this app", "the match"]
EMOJI = {"positive": ["😍", "🔥", "😊", "👍"], "negative": ["😡", "😢", "👎", "💔"], "neutral": ["📅", "☕"]}
EMOTICONS = {"positive": [":)", ":-D", "<3"], "negative": [":(", ":'("], "neutral": [""]}


def _post(label: str, rng: np.random.Generator) -> str:
    topic = rng.choice(TOPICS)
    if label == "neutral":
        words = " ".join(rng.choice(NEUTRAL, size=3))
        text = f"{topic} {words}"
    else:
        negated = rng.random() < 0.25
        pool = NEGATIVE if (label == "positive") == negated else POSITIVE
        word = str(rng.choice(pool))
        if rng.random() < 0.2:
            word = word[:-1] + word[-1] * int(rng.integers(3, 6))
        neg = "not " if negated else ""
        text = f"{neg}{word} {topic}" if rng.random() < 0.5 else f"{topic} is {neg}{word}"
    if rng.random() < 0.4:
        text += " " + str(rng.choice(EMOJI[label]))
    if rng.random() < 0.3:
        text += " " + str(rng.choice(EMOTICONS[label]))
    if rng.random() < 0.3:
        text = f"@user{int(rng.integers(1, 99))} " + text
    if rng.random() < 0.3:
        text += f" #{str(rng.choice(NEUTRAL + POSITIVE[:3] + NEGATIVE[:3]))}"
    if rng.random() < 0.2:
        text += f" https://example.com/p/{int(rng.integers(1000))}"
    if rng.random() < 0.2:
        text = text.upper() if rng.random() < 0.5 else text.title()
    return text


def synthetic_posts(n: int = 3000, *, seed: int = 0, faults: bool = True) -> pd.DataFrame:
    """``n`` labelled posts (positive, negative, neutral), a few duplicates, and faulty rows if asked."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(["positive", "negative", "neutral"], size=n, p=[0.4, 0.35, 0.25])
    posts = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "text": [_post(str(lab), rng) for lab in labels],
                          "label": labels})
    reposts = posts.sample(frac=0.03, random_state=seed).assign(id=lambda d: "re" + d["id"])
    posts = pd.concat([posts, reposts], ignore_index=True)
    if faults:
        extra = pd.DataFrame({"id": ["blank", "nolabel", "huge"], "text": ["   ", "fine day", "spam " * 5000],
                              "label": ["neutral", None, "negative"]})
        posts = pd.concat([posts, extra], ignore_index=True)
    return posts


def write_synthetic_posts(path: str | Path, *, n: int = 3000, seed: int = 0) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_posts(n, seed=seed).to_csv(path, index=False)
    return str(path)


def example(folder: Path) -> dict:
    """A CSV of 400 labelled posts (text, label) with duplicates and faulty rows; the parameters that run on it."""
    return {"input": write_synthetic_posts(Path(folder) / "posts.csv", n=400)}
