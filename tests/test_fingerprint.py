"""Fingerprints: stable across processes, order-independent for dicts, exact for keys."""

import functools
import math
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deapnn.core.fingerprint import decode_key, encode_key, fingerprint, key_digest, strict_fingerprint
from deapnn.data import load_digits


class WithFingerprint:
    def __init__(self, settings, verbose=False):
        self.settings, self.verbose = settings, verbose

    def fingerprint(self):
        return fingerprint(self.settings)  # verbose left out on purpose


class Plain:
    def __init__(self, a, b):
        self.a, self.b = a, b


SAMPLE = {
    "ints": [1, 2, 3], "float": 0.1, "neg_zero": -0.0, "inf": math.inf, "none": None,
    "text": "relu", "bytes": b"\x00\x01", "tuple": (1, (2.5, "x")), "set": {3, 1, 2},
    "array": np.arange(6, dtype=np.float32).reshape(2, 3), "scalar": np.int64(7),
    "loader": functools.partial(load_digits, seed=3), "function": load_digits,
}


def test_fingerprint_is_a_stable_hex_digest_across_processes_and_hash_seeds():
    code = ("import functools, math, numpy as np; from deapnn.data import load_digits; "
            "from deapnn.core.fingerprint import fingerprint; "
            f"SAMPLE = {SAMPLE_SOURCE}; print(fingerprint(SAMPLE))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
            for seed in ("1", "2")}
    assert outs == {fingerprint(SAMPLE)}
    assert len(fingerprint(SAMPLE)) == 64 and int(fingerprint(SAMPLE), 16) >= 0


#: SAMPLE written out, for the other interpreters (the set in another order on purpose).
SAMPLE_SOURCE = (
    "{'ints': [1, 2, 3], 'float': 0.1, 'neg_zero': -0.0, 'inf': math.inf, 'none': None, "
    "'text': 'relu', 'bytes': b'\\x00\\x01', 'tuple': (1, (2.5, 'x')), 'set': {2, 1, 3}, "
    "'array': np.arange(6, dtype=np.float32).reshape(2, 3), 'scalar': np.int64(7), "
    "'loader': functools.partial(load_digits, seed=3), 'function': load_digits}")


def test_dict_and_set_order_do_not_matter():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({1, 2, 3}) == fingerprint({3, 2, 1})


@pytest.mark.parametrize("a, b", [
    (1, 1.0), (1, True), (0, False), (1, "1"), (0.0, -0.0), (0.1, 0.1000000000000001),
    ((1, 2), [1, 2]), ("ab", b"ab"), (None, "None"), ({"a": 1}, [("a", 1)]),
    (np.zeros(3), np.zeros(3, np.float32)), (np.zeros(6), np.zeros((2, 3))),
    (np.float32(0.5), 0.5), (np.int64(1), 1), (("a", "bc"), ("ab", "c")),
    (functools.partial(load_digits, seed=1), functools.partial(load_digits, seed=2)),
    (functools.partial(load_digits, seed=1), load_digits),
    (WithFingerprint({"epochs": 1}), WithFingerprint({"epochs": 2})),
    (Plain(1, [2]), Plain(1, [3])), (random.Random(1), random.Random(2)),
])
def test_different_things_have_different_fingerprints(a, b):
    assert fingerprint(a) != fingerprint(b)


def test_equal_things_have_equal_fingerprints():
    assert fingerprint(WithFingerprint({"e": 1}, verbose=True)) == fingerprint(WithFingerprint({"e": 1}))
    assert fingerprint(Plain(1, {"x": np.ones(2)})) == fingerprint(Plain(1, {"x": np.ones(2)}))
    assert fingerprint(np.arange(4)[::2]) == fingerprint(np.array([0, 2]))
    assert fingerprint(functools.partial(load_digits, seed=1)) == \
        fingerprint(functools.partial(load_digits, seed=1))


def test_lambdas_are_told_apart_by_code_and_closure():
    def make(k):
        return lambda x: x + k

    assert fingerprint(make(1)) == fingerprint(make(1))
    assert fingerprint(make(1)) != fingerprint(make(2))
    assert fingerprint(lambda: 1) != fingerprint(lambda: 2)
    assert strict_fingerprint(make(1)) is None  # no name: identity is safer than content
    assert strict_fingerprint(functools.partial(load_digits, seed=1)) is not None


def test_an_unpicklable_object_without_fingerprint_is_a_type_error():
    import threading

    class Local:  # a local class, so it cannot be pickled by name
        def __init__(self):
            self.lock = threading.Lock()

    with pytest.raises(TypeError, match="cannot fingerprint"):
        fingerprint(Local())


def test_self_referencing_data_is_a_type_error():
    loop = [1]
    loop.append(loop)
    with pytest.raises(TypeError, match="self-referencing list"):
        fingerprint(loop)


keys = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4).map(tuple), max_leaves=12)


@given(keys)
def test_key_encoding_round_trips_exactly(key):
    decoded = decode_key(encode_key(key))
    assert decoded == key and repr(decoded) == repr(key)  # types and signs of zero kept


@given(keys, keys)
def test_distinct_keys_have_distinct_encodings(a, b):
    if repr(a) != repr(b):
        assert encode_key(a) != encode_key(b)


def test_numpy_keys_and_scalars():
    array = np.arange(5, dtype=np.float64)
    assert decode_key(encode_key(array)) == ("<f8", (5,), array.tobytes())
    assert decode_key(encode_key((np.int64(3), np.float32(0.5), np.bool_(True)))) == (3, 0.5, True)
    assert key_digest(("a", 1)) != key_digest(("a", 1.0))
    with pytest.raises(TypeError, match="evaluation key must be a tuple"):
        encode_key(("a", [1, 2]))


def test_an_object_with_its_own_fingerprint_is_taken_at_its_word():
    assert fingerprint(WithFingerprint({"e": 1})) == fingerprint({"e": 1})
    assert fingerprint([WithFingerprint({"e": 1})]) == fingerprint([WithFingerprint({"e": 1})])
    assert fingerprint([WithFingerprint({"e": 1})]) != fingerprint([fingerprint({"e": 1})])

    class Bad:
        def fingerprint(self):
            return 3

    with pytest.raises(TypeError, match=r"Bad.fingerprint\(\) must return a str, got 3"):
        fingerprint(Bad())


class Node:
    def __init__(self, value):
        self.value, self.children, self.parent = value, [], None

    def add(self, child):
        child.parent = self
        self.children.append(child)
        return self


def test_an_object_with_a_cycle_through_its_state_is_fingerprinted_by_its_pickle():
    a, b = Node(1).add(Node(2)), Node(1).add(Node(3))
    assert fingerprint(a) == fingerprint(Node(1).add(Node(2)))
    assert fingerprint(a) != fingerprint(b)
