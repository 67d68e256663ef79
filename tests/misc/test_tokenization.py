import subprocess
import sys

from tests.conftest import SQL_WORDS, build_word_tokenizer


def test_load_from_folder_and_encode(word_tokenizer_dir):
    from sufdec.tokenization import load_tokenizer

    tok = load_tokenizer(word_tokenizer_dir)
    ids = tok.encode_batch(["SELECT name FROM singer", "count(*)"])
    assert ids[0] == [tok.backend.token_to_id(w) for w in "SELECT name FROM singer".split()]
    assert tok.decode(ids[0]) == "SELECT name FROM singer"
    assert tok.vocab_size == len(set(SQL_WORDS)) + 2
    assert tok.name == "tok"


def test_fingerprint_is_stable_and_sensitive(tmp_path):
    from sufdec.tokenization import load_tokenizer

    a = load_tokenizer(build_word_tokenizer(tmp_path / "a", SQL_WORDS))
    b = load_tokenizer(build_word_tokenizer(tmp_path / "b", SQL_WORDS))
    c = load_tokenizer(build_word_tokenizer(tmp_path / "c", SQL_WORDS + ["extra"]))
    d = load_tokenizer(build_word_tokenizer(tmp_path / "d", list(reversed(SQL_WORDS))))
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint
    assert a.fingerprint != d.fingerprint  # same words, other ids


def test_missing_tokenizer_is_one_clear_error(tmp_path):
    import pytest

    from sufdec.tokenization import TokenizerLoadError, load_tokenizer

    with pytest.raises(TokenizerLoadError, match="could not load a tokenizer"):
        load_tokenizer(tmp_path / "nothing-here")


def test_no_torch_on_the_index_path():
    code = (
        "import sys, sufdec.tokenization, sufdec.models, sufdec.suffix, sufdec.store;"
        "assert 'torch' not in sys.modules, 'torch imported';"
        "assert 'transformers' not in sys.modules, 'transformers imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
