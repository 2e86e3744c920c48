"""Tokenisers: text -> list of string tokens.

Deliberately minimal; corpus-specific clean-up (lower-casing, replacing newlines) belongs to
the caller, so each tokeniser does exactly one thing:

- `char_tokens`: one token per Unicode code point (a Chinese character is one token; so is
  an emoji outside the BMP; a combining accent is its own token; "\\r\\n" is two tokens).
- `word_tokens`: `str.split()` (runs of any Unicode whitespace separate words; no empty
  tokens).
"""


def _check_text(text) -> None:
    if not isinstance(text, str):
        hint = " (decode bytes first, e.g. `data.decode('utf-8')`)" if isinstance(
            text, (bytes, bytearray)) else ""
        raise TypeError(f"`text` must be a str, got {type(text).__name__}{hint}")


def char_tokens(text: str) -> list[str]:
    """Splits `text` into one token per Unicode code point.

    Args:
        text: a `str` (not `bytes`: splitting UTF-8 bytes would cut Chinese characters apart).

    Returns:
        A list of `len(text)` one-character strings, whitespace included.

    Example:
        >>> char_tokens("想要 有\\n")
        ['想', '要', ' ', '有', '\\n']
    """
    _check_text(text)
    return list(text)


def word_tokens(text: str) -> list[str]:
    """Splits `text` on runs of whitespace, as `str.split()` does.

    Args:
        text: a `str`.

    Returns:
        The list of non-empty words; leading/trailing whitespace gives no empty tokens.

    Example:
        >>> word_tokens(" the time\\tmachine\\n")
        ['the', 'time', 'machine']
    """
    _check_text(text)
    return text.split()
