"""Cleaning posts, vectorised over a partition: normalization, tokens, stopwords that keep negations, lemmas.

Each step can be turned off through ``CleanOptions``; lemmas are memoised over the partition's unique tokens.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass

import emoji
import pandas as pd
import simplemma

URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
MENTION = re.compile(r"@\w+")
HASHTAG = re.compile(r"#(\w+)")
NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
ELONGATED = re.compile(r"(\w)\1{2,}")
EMOJI_RUN = re.compile(r"[#*0-9]?[^\x00-\x7f]+")  # emoji sit in non-ASCII runs (keycaps start with #, * or a digit)
TOKEN = re.compile(r"<[a-z]+>|:[a-z0-9_\-]+:|[a-z]+(?:['_][a-z]+)*", re.IGNORECASE)
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
        if run not in memo:
            memo[run] = (emoji.emoji_count(run), emoji.demojize(run, delimiters=(" :", ": ")))
        found += memo[run][0]
        return memo[run][1]

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


def normalize_texts(texts: pd.Series, options: CleanOptions = CleanOptions()) -> pd.Series:
    """Text-level steps, vectorised with pandas string methods."""
    out = texts.fillna("").astype(str)
    if options.normalize_unicode:
        out = out.map(lambda t: unicodedata.normalize("NFKC", t))
    if options.emoji_to_words:
        for face, word in EMOTICONS.items():
            out = out.str.replace(face, word, regex=False)
        memo: dict = {}
        out = out.map(lambda t: t if t.isascii() else _demojize(t, memo))
    if options.replace_urls:
        out = out.str.replace(URL, " <url> ", regex=True)
    if options.replace_mentions:
        out = out.str.replace(MENTION, " <user> ", regex=True)
    out = out.str.replace(HASHTAG, r" <hashtag> \1 " if options.keep_hashtag_words else " <hashtag> ", regex=True)
    if options.lowercase:
        out = out.str.lower()
    if options.replace_numbers:
        out = out.str.replace(NUMBER, " <number> ", regex=True)
    if options.shorten_elongations:
        out = out.str.replace(ELONGATED, r"\1\1", regex=True)
    return out.str.replace(r"\s+", " ", regex=True).str.strip()


def tokenize(texts: pd.Series) -> pd.Series:
    """Words (with inner apostrophes), placeholder tokens like <url>, and emoji names like :fire:."""
    return texts.str.findall(TOKEN)


def clean_posts(texts: pd.Series, options: CleanOptions = CleanOptions(), *, lang: str = "en") -> pd.DataFrame:
    """``clean_text`` and ``tokens`` for each post (one partition; the flow maps this over Dask partitions)."""
    tokens = tokenize(normalize_texts(texts, options))
    if options.remove_stopwords:
        tokens = tokens.map(lambda toks: [t for t in toks if t not in STOPWORDS])
    if options.lemmatize:
        unique = {t for toks in tokens for t in toks if t.isalpha()}
        lemma = {t: simplemma.lemmatize(t, lang=lang) for t in unique}
        tokens = tokens.map(lambda toks: [lemma.get(t, t) for t in toks])
    return pd.DataFrame({"clean_text": tokens.map(" ".join), "tokens": tokens}, index=texts.index)
