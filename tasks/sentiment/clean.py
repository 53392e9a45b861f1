"""Cleaning posts, one partition at a time: normalization, tokens, stopwords that keep negations, lemmas.

Each step can be turned off through ``CleanOptions``. Every text-level step but NFKC and emoji runs once over the
partition's posts joined by NUL (none of them can match across a NUL); NFKC and emoji run only on non-ASCII posts;
stopwords and lemmas are one lookup table over the partition's unique tokens. ``clean_partitions`` spreads the
partitions over Dask, in worker processes when the cluster's workers are threads of this process (the cleaning is
pure Python and holds the GIL).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from itertools import chain

import dask
import emoji
import pandas as pd
import simplemma

URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
URL_JOINED = re.compile(r"https?://[^\s\x00]+|www\.[^\s\x00]+", re.IGNORECASE)  # URL within posts joined by NUL
MENTION = re.compile(r"@\w+")
HASHTAG = re.compile(r"#(\w+)")
NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
ELONGATED = re.compile(r"(\w)\1{2,}")
EMOJI_RUN = re.compile(r"[#*0-9]?[^\x00-\x7f]+")  # emoji sit in non-ASCII runs (keycaps start with #, * or a digit)
TOKEN = re.compile(r"<[a-z]+>|:[a-z0-9_\-]+:|[a-z]+(?:['_][a-z]+)*", re.IGNORECASE)
# TOKEN for lowercased ASCII text, where IGNORECASE cannot match anything more (it can on e.g. the dotless "ı").
TOKEN_LOWER = re.compile(r"<[a-z]+>|:[a-z0-9_\-]+:|[a-z]+(?:['_][a-z]+)*")
SEPARATOR = "\x00"  # in no emoticon, not \w, not \s: no match of the text-level steps spans two joined posts
EMOTICONS = {":-)": " emo_smile ", ":)": " emo_smile ", ":-D": " emo_laugh ", ":D": " emo_laugh ",
             "<3": " emo_heart ", ":'(": " emo_cry ", ":-(": " emo_sad ", ":(": " emo_sad ", ";)": " emo_wink "}
NEGATIONS = {"not", "no", "never", "nor", "none", "nothing", "nobody", "neither", "without", "n't", "cannot"}
STOPWORDS = {
    "a", "an", "the", "and", "or", "but", "if", "of", "at", "by", "for", "with", "about", "to", "from", "in",
    "on", "is", "are", "was", "were", "be", "been", "being", "am", "it", "its", "this", "that", "these", "those",
    "i", "me", "my", "we", "our", "you", "your", "he", "she", "they", "them", "his", "her", "their", "what",
    "which", "who", "so", "than", "too", "very", "just", "do", "does", "did", "have", "has", "had", "there",
    "here", "as", "up", "out", "into", "then", "will", "can", "would", "should", "could", "all", "any", "some",
} - NEGATIONS


# emoji builds its lookup table lazily in a module dict; two threads doing that at once lose emoji. Build it now.
emoji.emoji_count("\N{THUMBS UP SIGN}")


def _demojize(text: str, memo: dict) -> str:
    """``emoji.demojize`` one non-ASCII run at a time, memoised per partition; the text unchanged if it holds
    no emoji."""
    found = 0

    def replace(match: re.Match) -> str:
        nonlocal found
        run = match.group()
        hit = memo.get(run)
        if hit is None:
            hit = memo[run] = (emoji.emoji_count(run), emoji.demojize(run, delimiters=(" :", ": ")))
        found += hit[0]
        return hit[1]

    out = EMOJI_RUN.sub(replace, text)
    return out if found else text


@dataclass(frozen=True)
class CleanOptions:
    normalize_unicode: bool = True
    lowercase: bool = True
    replace_urls: bool = True
    replace_mentions: bool = True
    keep_hashtag_words: bool = True
    replace_numbers: bool = True
    emoji_to_words: bool = True
    shorten_elongations: bool = True
    remove_stopwords: bool = True
    lemmatize: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


def _normalize_stretch(text: str, options: CleanOptions, *, joined: bool) -> str:
    """Emoticons, emoji, URLs, mentions, hashtags, lowercase (pandas' ``str.lower``), numbers and elongations on
    one post or on posts joined by NUL (``joined``: then emoji go post by post and URLs stop at a NUL)."""
    if options.emoji_to_words:
        for face, word in EMOTICONS.items():
            text = text.replace(face, word)
        if not text.isascii():
            memo: dict = {}
            if joined:
                text = SEPARATOR.join([t if t.isascii() else _demojize(t, memo) for t in text.split(SEPARATOR)])
            else:
                text = _demojize(text, memo)
    if options.replace_urls:
        text = (URL_JOINED if joined else URL).sub(" <url> ", text)
    if options.replace_mentions:
        text = MENTION.sub(" <user> ", text)
    text = HASHTAG.sub(r" <hashtag> \1 " if options.keep_hashtag_words else " <hashtag> ", text)
    if options.lowercase:
        text = pd.Series([text]).astype(str).str.lower().iloc[0]
    if options.replace_numbers:
        text = NUMBER.sub(" <number> ", text)
    return ELONGATED.sub(r"\1\1", text) if options.shorten_elongations else text


def _normalized(texts: pd.Series, options: CleanOptions) -> list[str]:
    """The text-level steps, without the whitespace collapse (tokens never hold whitespace)."""
    posts = texts.fillna("").astype(str).tolist()
    if options.normalize_unicode:
        posts = [t if t.isascii() else unicodedata.normalize("NFKC", t) for t in posts]
    if not posts:
        return []
    joined = SEPARATOR.join(posts)
    if joined.count(SEPARATOR) != len(posts) - 1:
        return [_normalize_stretch(t, options, joined=False) for t in posts]
    return _normalize_stretch(joined, options, joined=True).split(SEPARATOR)


def tokenize(texts: pd.Series) -> pd.Series:
    """Words (with inner apostrophes), placeholder tokens like <url>, and emoji names like :fire:."""
    return texts.str.findall(TOKEN)


def clean_posts(texts: pd.Series, options: CleanOptions = CleanOptions(), *, lang: str = "en") -> pd.DataFrame:
    """``clean_text`` and ``tokens`` for each post (one partition; the flow maps this over Dask partitions)."""
    fast, slow = TOKEN_LOWER.findall, TOKEN.findall
    tokens = [fast(t) if options.lowercase and t.isascii() else slow(t) for t in _normalized(texts, options)]
    table = {}
    for t in set(chain.from_iterable(tokens)):
        if options.remove_stopwords and t in STOPWORDS:
            table[t] = None
        else:
            table[t] = simplemma.lemmatize(t, lang=lang) if options.lemmatize and t.isalpha() else t
    get = table.__getitem__
    tokens = [[x for x in map(get, toks) if x is not None] for toks in tokens]
    return pd.DataFrame({"clean_text": [" ".join(toks) for toks in tokens], "tokens": tokens}, index=texts.index)


def _workers_share_this_process() -> bool:
    """True without a distributed client, or when every worker of the current one runs in this process
    (``compute.dask_client``'s local cluster: one in-process worker, reached over ``inproc://``)."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        return True
    return all(address.startswith("inproc://") for address in client.scheduler_info()["workers"])


def clean_partitions(texts: pd.Series, options: CleanOptions = CleanOptions(), *, partition: int = 50_000,
                     lang: str = "en") -> pd.DataFrame:
    """``clean_posts`` over partitions of ``partition`` posts, one Dask task each, concatenated in order.

    Where the workers are threads of this process, the partitions run on Dask's ``processes`` scheduler (one
    spawned process per core, up to one per partition) so they use every core; a cluster of worker processes
    named by the user runs them as usual. A single partition is cleaned right here. Spawned processes import the
    caller's main module, so a script that runs the flow needs the ``if __name__ == "__main__":`` guard that any
    Dask process cluster needs.
    """
    if len(texts) <= partition:
        return clean_posts(texts, options, lang=lang)
    parts = [dask.delayed(clean_posts)(texts.iloc[s:s + partition], options, lang=lang)
             for s in range(0, len(texts), partition)]
    if _workers_share_this_process():
        workers = min(len(parts), dask.system.CPU_COUNT)
        return pd.concat(dask.compute(*parts, scheduler="processes", num_workers=workers, chunksize=1))
    return pd.concat(dask.compute(*parts))
