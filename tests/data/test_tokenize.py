"""Tokenisers: one token per code point, whitespace-split words."""

import pytest

from rnnzoo.data.tokenize import char_tokens, word_tokens


def test_char_tokens_split_chinese_into_characters():
    assert char_tokens("想要有直升机 想要和你飞到宇宙去") == [
        "想", "要", "有", "直", "升", "机", " ",
        "想", "要", "和", "你", "飞", "到", "宇", "宙", "去"]


def test_char_tokens_one_token_per_code_point():
    text = "a\r\n\t 😀e\u0301中"
    tokens = char_tokens(text)
    assert tokens == ["a", "\r", "\n", "\t", " ", "😀", "e", "\u0301", "中"]
    assert "".join(tokens) == text
    assert char_tokens("") == []


def test_char_tokens_on_real_lyrics_rejoin_to_the_text(jaychou_text):
    tokens = char_tokens(jaychou_text)
    assert len(tokens) == 63282  # the corpus README's character count
    assert len(set(tokens)) == 2583
    assert "".join(tokens) == jaychou_text


def test_word_tokens_split_on_any_whitespace():
    assert word_tokens("  the time\tmachine\n\nby  H. G. Wells\r\n") == [
        "the", "time", "machine", "by", "H.", "G.", "Wells"]
    assert word_tokens("") == []
    assert word_tokens(" \n ") == []


@pytest.mark.parametrize("fn", [char_tokens, word_tokens])
def test_bytes_are_rejected(fn):
    with pytest.raises(TypeError, match="decode bytes first"):
        fn("中".encode())
