"""Features fitted on the training split only: a vocabulary with token ids, and TF-IDF."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

PAD, UNKNOWN = 0, 1


def build_vocabulary(token_lists: Iterable[Sequence[str]], *, min_count: int = 2,
                     max_size: int = 20_000) -> dict[str, int]:
    """Token to id (0 padding, 1 unknown) for tokens seen at least ``min_count`` times, most frequent first."""
    counts = Counter(t for tokens in token_lists for t in tokens)
    common = [t for t, c in counts.most_common(max_size) if c >= min_count]
    return {token: i + 2 for i, token in enumerate(common)}


def token_ids(token_lists: Sequence[Sequence[str]], vocabulary: dict[str, int], length: int) -> np.ndarray:
    """(n, length) int64 ids, truncated or right-padded; unseen tokens get UNKNOWN."""
    out = np.full((len(token_lists), length), PAD, dtype=np.int64)
    for i, tokens in enumerate(token_lists):
        ids = [vocabulary.get(t, UNKNOWN) for t in tokens[:length]]
        out[i, : len(ids)] = ids
    return out


def _identity(tokens: Sequence[str]) -> Sequence[str]:
    return tokens


def fit_tfidf(train_tokens: Sequence[Sequence[str]]) -> TfidfVectorizer:
    """TF-IDF over unigrams and bigrams of the cleaned tokens, fitted on the training posts."""
    vectorizer = TfidfVectorizer(analyzer=_identity, min_df=1, sublinear_tf=True)
    return vectorizer.fit([list(t) + [f"{a}_{b}" for a, b in zip(t, t[1:], strict=False)] for t in train_tokens])


def tfidf_matrix(vectorizer: TfidfVectorizer, token_lists: Sequence[Sequence[str]]):
    return vectorizer.transform([list(t) + [f"{a}_{b}" for a, b in zip(t, t[1:], strict=False)]
                                 for t in token_lists])
