"""Slot layout: encoding round trips, linearity, catalog-derived widths and refusals."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from psc.catalog import Catalog
from psc.exceptions import InvalidMessage, OverflowRisk, ParameterError
from psc.hazmat.packing import GUARD_BITS, MAX_SLOT_BITS, SlotLayout, worst_case_sum
from psc.testing import catalogs, delta_vectors, insecure_keypair, slot_layouts

N = int(insecure_keypair(0, 512)[0].n)  # any odd modulus above the layout works for encoding


def slow_pack(values: list[int], w: int) -> int:
    return sum(v << (w * i) for i, v in enumerate(values))


@st.composite
def layouts_and_values(draw: st.DrawFn, *, halve: bool = False) -> tuple[SlotLayout, np.ndarray]:
    layout = draw(slot_layouts(key_bits=512))
    bound = layout.max_value // 2 if halve else layout.max_value
    size = min(layout.slots, 24)
    return layout, draw(delta_vectors(size=size, min_size=1, bound=bound))


@settings(max_examples=100)
@given(layouts_and_values())
def test_pack_unpack_round_trip(case: tuple[SlotLayout, np.ndarray]) -> None:
    layout, v = case
    m = layout.pack(v)
    assert m == slow_pack(v.tolist(), layout.slot_bits)
    assert abs(m) < 1 << (layout.plaintext_bits - 1)
    bound = int(np.abs(v).max())
    back = layout.unpack(m % N, N, v.size, bound)
    assert back.dtype == np.int64
    assert back.tolist() == v.tolist()


@settings(max_examples=60)
@given(layouts_and_values(halve=True), st.data())
def test_packing_is_linear(case: tuple[SlotLayout, np.ndarray], data: st.DataObject) -> None:
    layout, x = case
    y = data.draw(delta_vectors(size=x.size, bound=layout.max_value // 2))
    assert layout.pack(x) + layout.pack(y) == layout.pack(x + y)
    m = (layout.pack(x) + layout.pack(y)) % N
    assert layout.unpack(m, N, x.size, layout.max_value).tolist() == (x + y).tolist()


def test_slot_extremes_round_trip_at_every_width() -> None:
    for w in range(2, MAX_SLOT_BITS + 1):
        layout = SlotLayout.for_key(512, w)
        top = layout.max_value
        v = np.array([top, -top, 0, 1, -1][: layout.slots], dtype=np.int64)
        assert layout.unpack(layout.pack(v) % N, N, v.size, top).tolist() == v.tolist()


# ----------------------------------------------------------------------------------------
# refusals


def test_layout_parameters_are_checked() -> None:
    with pytest.raises(ParameterError, match=r"slot_bits must be in 2\.\.62"):
        SlotLayout(1, 4)
    with pytest.raises(ParameterError, match=r"slot_bits must be in 2\.\.62"):
        SlotLayout(MAX_SLOT_BITS + 1, 4)
    with pytest.raises(ParameterError, match="at least one slot"):
        SlotLayout(8, 0)
    with pytest.raises(ParameterError, match="cannot hold one"):
        SlotLayout.for_key(GUARD_BITS + 8, 8)
    layout = SlotLayout.for_key(2048, 14)
    assert layout.slots == (2048 - 1 - GUARD_BITS) // 14
    assert layout.plaintext_bits <= 2048 - 1 - GUARD_BITS
    assert (
        layout.blocks(0) == 1
        and layout.blocks(layout.slots) == 1
        and layout.blocks(layout.slots + 1) == 2
    )


def test_pack_refuses_values_that_do_not_fit() -> None:
    layout = SlotLayout(8, 4)
    with pytest.raises(OverflowRisk, match="slot range"):
        layout.pack(np.array([128], dtype=np.int64))
    with pytest.raises(OverflowRisk, match="slot range"):
        layout.pack(np.array([0, -128], dtype=np.int64))
    with pytest.raises(ValueError, match="holds 4 values"):
        layout.pack(np.zeros(5, dtype=np.int64))


@settings(max_examples=60)
@given(layouts_and_values(), st.data())
def test_unpack_rejects_values_above_the_declared_bound(
    case: tuple[SlotLayout, np.ndarray], data: st.DataObject
) -> None:
    layout, v = case
    top = int(np.abs(v).max())
    if top == 0:
        v = v.copy()
        v[0] = top = 1
    with pytest.raises(InvalidMessage):
        layout.unpack(layout.pack(v) % N, N, v.size, top - 1)


@settings(max_examples=60)
@given(slot_layouts(key_bits=512), st.data())
def test_unpack_rejects_non_zero_padding_and_bits_above_the_layout(
    layout: SlotLayout, data: st.DataObject
) -> None:
    if layout.slots > 1:
        count = data.draw(st.integers(1, layout.slots - 1))
        v = np.zeros(layout.slots, dtype=np.int64)
        v[data.draw(st.integers(count, layout.slots - 1))] = data.draw(st.sampled_from([1, -1]))
        with pytest.raises(InvalidMessage):
            layout.unpack(layout.pack(v) % N, N, count, layout.max_value)
    # anything beyond the top slot, above or below zero
    extra = data.draw(st.integers(1, 1 << 40)) << layout.plaintext_bits
    for m in (extra, N - extra):
        with pytest.raises(InvalidMessage, match="outside the slot layout"):
            layout.unpack(m, N, layout.slots, layout.max_value)


@settings(max_examples=60)
@given(slot_layouts(key_bits=512), st.integers(0, N - 1))
def test_random_plaintexts_do_not_decode(layout: SlotLayout, m: int) -> None:
    """A tampered ciphertext decrypts to a near-uniform plaintext: the 64 guard bits make
    it decode into the layout with probability below 2^-64."""
    if abs(m if m <= N // 2 else m - N) < 1 << layout.plaintext_bits:
        return  # the (negligible) in-layout sliver; hypothesis' small integers land here
    with pytest.raises(InvalidMessage):
        layout.unpack(m, N, layout.slots, layout.max_value)


# ----------------------------------------------------------------------------------------
# widths derived from the catalog


def slow_worst_case(cat: Catalog, periods: int | None, multiplicity: int) -> int:
    total = 0
    for r in cat.rules:
        p = cat.retention[r.retention].months if periods is None else periods
        total += abs(r.delta) * r.max_per_period * p
    return total * multiplicity


def test_city_catalog_width(city: Catalog) -> None:
    # 12*4*5 + 36*30 + 24*50 + 36*30 + 24*2*10 + 12*5 + 12*2*5 + 12*10
    assert worst_case_sum(city) == 4380
    layout = SlotLayout.for_catalog(city, 2048)
    assert layout.slot_bits == 14 and layout.max_value >= 4380
    assert layout.slots == 141  # 512-byte ciphertexts: about 3.6 bytes per subject
    assert SlotLayout.for_catalog(city, 2048, multiplicity=4).slot_bits == 16
    assert SlotLayout.for_catalog(city, 2048, headroom_bits=3).slot_bits == 17


@settings(max_examples=60)
@given(
    catalogs(max_abs_delta=10_000, max_per_period=50),
    st.one_of(st.none(), st.integers(1, 240)),
    st.integers(1, 64),
    st.integers(0, 4),
)
def test_for_catalog_width_fits_the_worst_case_and_is_minimal(
    cat: Catalog, periods: int | None, multiplicity: int, headroom: int
) -> None:
    need = worst_case_sum(cat, periods=periods, multiplicity=multiplicity)
    assert need == slow_worst_case(cat, periods, multiplicity)
    layout = SlotLayout.for_catalog(
        cat, 1024, periods=periods, multiplicity=multiplicity, headroom_bits=headroom
    )
    w = layout.slot_bits
    assert layout.max_value >= need << headroom
    assert w == max(2, need.bit_length() + 1 + headroom)
    if need:  # one bit less would not hold the worst case (with its headroom)
        assert (1 << (w - 2)) - 1 < need << headroom
    assert layout == SlotLayout.for_catalog(
        cat, 1024, periods=periods, multiplicity=multiplicity, headroom_bits=headroom, slot_bits=w
    )
    with pytest.raises(OverflowRisk, match=f"use slot_bits >= {w}"):
        SlotLayout.for_catalog(
            cat,
            1024,
            periods=periods,
            multiplicity=multiplicity,
            headroom_bits=headroom,
            slot_bits=w - 1,
        )


def test_for_catalog_refuses_sums_beyond_the_widest_slot(city: Catalog) -> None:
    with pytest.raises(OverflowRisk, match="above the 62-bit maximum"):
        SlotLayout.for_catalog(city, 4096, multiplicity=1 << 50)
    with pytest.raises(ParameterError, match="multiplicity"):
        worst_case_sum(city, multiplicity=0)
    with pytest.raises(ParameterError, match="periods"):
        worst_case_sum(city, periods=0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: delta_vectors(size=0), "size must be in 1..65536"),
        (lambda: delta_vectors(bound=-1), "bound must be in 0.."),
        (lambda: delta_vectors(size=3, min_size=4), "min_size must be in 1..3"),
        (lambda: slot_layouts(key_bits=70, min_slot_bits=10), "use key_bits >= 75"),
        (lambda: slot_layouts(min_slot_bits=9, max_slot_bits=8), "must not exceed"),
    ],
)
def test_vector_strategies_check_their_arguments(make: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        make()
