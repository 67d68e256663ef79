def test_core_module_imports():
    from sufdec._core import SuffixTree

    assert SuffixTree is not None
