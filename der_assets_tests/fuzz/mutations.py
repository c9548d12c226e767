"""Hypothesis strategies that mutate a seed payload the way a hostile or broken device would.

A case is (seed, operations): each operation is a small tuple of integers and choices that
`apply` turns into bytes deterministically, so hypothesis can generate, replay and shrink it
and a case can be saved to the corpus and read back. The operations: set a value to a hostile
one (booleans, null, infinities as JSON 1e400 and XML "inf", 1e308, 2^70, words, empty
containers), move a time (a day, a year, decades, epoch 0, 12.5 s), duplicate an element (as it
was, or with a changed value), reverse or shuffle a list, drop a field, nest a value thousands
deep, scale a number; then, at the byte level, truncate, flip a byte or splice junk in.
"""

from __future__ import annotations

import json
import random
import re

import pandas as pd
from hypothesis import strategies as st

from .seeds import Seed, all_seeds

INF, NEG_INF, NAN = "\x00INF\x00", "\x00-INF\x00", "\x00NAN\x00"  # written raw: 1e400, -1e400, NaN
HOSTILE = [True, False, None, 0, -0.0, 12.5, -1, 1e308, -1e308, 2**70, -(2**70), "", "true", "inf", "NaN", "1e400",
           [], {}, INF, NEG_INF, NAN, 4_000_000_000, 10**12, "1970-01-01T00:00:00+00:00", "2099-01-01 00:00:00",
           "9999-12-31T23:59:59Z", "0000-00-00 00:00:00", "97%", " 3 ", "production", "eim", "disabled"]
HOSTILE_TEXT = ["inf", "-inf", "nan", "1e400", "-0", "0", "99999999999999999999", "-5", "", "true", "12.5", " 7 ",
                "4000000000", "1e308", "-1e308", "0x10", "72", "1", "19", "4", "10", "3600", "300"]
SHIFTS_S = [1, 300, 86400, 30 * 86400, 399 * 86400, 401 * 86400, 30 * 365 * 86400, -30 * 365 * 86400,
            -86400, -401 * 86400, 10**9, -10**9]
ABSURD_TIMES = [0, -0.0, 12.5, -1, 4_000_000_000, 9.3e9, 1e20, "1970-01-01 00:00:00", "2100-01-01T00:00:00+00:00"]
JUNK = [b"\xff", b"\x00", b"}", b"]", b"{", b'"', b",,", b"\xef\xbb\xbf", b"<!ENTITY x 'y'>", b"&x;", b"\n"]
TIME_KEY = re.compile(r"time|date|stamp|_at$|^start|^end", re.I)
DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")

_index = st.integers(0, 2**16)
_json_op = st.one_of(
    st.tuples(st.just("set"), _index, st.integers(0, len(HOSTILE) - 1)),
    st.tuples(st.just("time"), _index, st.integers(0, len(SHIFTS_S) + len(ABSURD_TIMES) - 1)),
    st.tuples(st.just("dup"), _index, _index, st.booleans()),
    st.tuples(st.just("reorder"), _index, st.integers(0, 2**16)),
    st.tuples(st.just("drop"), _index, _index),
    st.tuples(st.just("nest"), _index, st.sampled_from([2, 50, 999, 5000])),
    st.tuples(st.just("scale"), _index, st.sampled_from([0.0, -1.0, 1e300, 1e-300, 1.5, 1000.0])),
)
_xml_op = st.one_of(
    st.tuples(st.just("xset"), _index, st.integers(0, len(HOSTILE_TEXT) - 1)),
    st.tuples(st.just("xtime"), _index, st.integers(0, len(SHIFTS_S) - 1)),
    st.tuples(st.just("xdup"), _index, st.booleans()),
    st.tuples(st.just("xreverse"), _index),
    st.tuples(st.just("xdrop"), _index),
    st.tuples(st.just("xnest"), _index, st.sampled_from([2, 50, 999, 5000])),
)
_byte_op = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("flip"), _index, st.integers(0, 255)),
    st.tuples(st.just("splice"), _index, st.integers(0, len(JUNK) - 1)),
)


def cases(seeds: tuple[Seed, ...] | None = None) -> st.SearchStrategy:
    """(seed index, structural operations, byte operations) over `seeds` (default: every seed)."""
    seeds = seeds if seeds is not None else all_seeds()

    @st.composite
    def case(draw):
        k = draw(st.integers(0, len(seeds) - 1))
        ops = draw(st.lists(_xml_op if seeds[k].is_xml else _json_op, min_size=0, max_size=3))
        # byte damage on a quarter of the structural cases (it mostly ends in a ParseError), always without them
        raw = draw(st.lists(_byte_op, min_size=1, max_size=2)) if not ops or draw(st.integers(0, 3)) == 0 else []
        return seeds[k].name, tuple(ops), tuple(raw)

    return case()


# ---- applying operations -------------------------------------------------------------------------

def apply(seed: Seed, ops, raw_ops) -> bytes:
    """The mutated payload, deterministic in (seed, ops, raw_ops)."""
    payload = _apply_xml(seed.payload, ops) if seed.is_xml else _apply_json(seed.payload, ops)
    for op in raw_ops:
        payload = _apply_bytes(payload, op)
    return payload


def _docs(payload: bytes) -> list:
    dec, text, pos, out = json.JSONDecoder(), payload.decode("utf-8"), 0, []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        doc, pos = dec.raw_decode(text, pos)
        out.append(doc)


def _walk(node, path=()):
    """(path, parent, key, value) for every value below node, depth first."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield path + (key,), node, key, value
        yield from _walk(value, path + (key,))


def _leaves(docs):
    return [(parent, key, value) for _, parent, key, value in _walk(docs) if not isinstance(value, (dict, list))]


def _is_time(key, value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(key, str) and TIME_KEY.search(key):
        return True
    if isinstance(value, (int, float)) and 9e8 < value < 4.2e9:
        return True
    return isinstance(value, str) and bool(DATE_TEXT.match(value))


def _shift(value, seconds):
    if isinstance(value, (int, float)):
        return value + seconds
    if isinstance(value, str) and DATE_TEXT.match(value):
        try:
            ts = pd.Timestamp(value) + pd.Timedelta(seconds=seconds)
        except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
            return "0001-01-01 00:00:00"
        if ts.tzinfo is not None:
            return ts.isoformat()
        return ts.strftime("%Y-%m-%dT%H:%M:%S" if "T" in value else "%Y-%m-%d %H:%M:%S")
    return value


def _apply_json(payload: bytes, ops) -> bytes:
    if not ops:
        return payload
    docs = _docs(payload)
    for op in ops:
        kind = op[0]
        if kind == "set":
            leaves = _leaves(docs)
            if leaves:
                parent, key, _ = leaves[op[1] % len(leaves)]
                parent[key] = HOSTILE[op[2]]
        elif kind == "time":
            times = [(p, k, v) for p, k, v in _leaves(docs) if _is_time(k, v)]
            if times:
                parent, key, value = times[op[1] % len(times)]
                if op[2] < len(SHIFTS_S):
                    parent[key] = _shift(value, SHIFTS_S[op[2]])
                else:
                    parent[key] = ABSURD_TIMES[op[2] - len(SHIFTS_S)]
        elif kind == "dup":
            lists = [v for _, _, _, v in _walk(docs) if isinstance(v, list) and v] + [docs]
            target = lists[op[1] % len(lists)]
            i = op[2] % len(target)
            copy = json.loads(json.dumps(target[i]))
            if op[3]:  # the duplicate disagrees: its first number changes
                nums = [(p, k, v) for p, k, v in _leaves([copy]) if isinstance(v, (int, float))
                        and not isinstance(v, bool) and not _is_time(k, v)]
                if nums:
                    p, k, v = nums[0]
                    p[k] = v * 7 + 13
            target.insert(min(i + 1, len(target)), copy)
        elif kind == "reorder":
            lists = [v for _, _, _, v in _walk(docs) if isinstance(v, list) and len(v) > 1] or [docs]
            target = lists[op[1] % len(lists)]
            if op[2] % 2:
                target.reverse()
            else:
                random.Random(op[2]).shuffle(target)
        elif kind == "drop":
            containers = [v for _, _, _, v in _walk(docs) if isinstance(v, (dict, list)) and v]
            if containers:
                target = containers[op[1] % len(containers)]
                keys = list(target) if isinstance(target, dict) else list(range(len(target)))
                del target[keys[op[2] % len(keys)]]
        elif kind == "nest":  # written raw by _dump, so the mutator itself never recurses that deep
            leaves = _leaves(docs)
            if leaves:
                parent, key, value = leaves[op[1] % len(leaves)]
                parent[key] = f"\x00NEST{op[2]}\x00" + json.dumps(value)
        elif kind == "scale":
            nums = [(p, k, v) for p, k, v in _leaves(docs) if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if nums:
                parent, key, value = nums[op[1] % len(nums)]
                parent[key] = value * op[2]
    return _dump(docs)


_NESTED = re.compile(r'"\\u0000NEST(\d+)\\u0000((?:[^"\\]|\\.)*)"')


def _dump(docs: list) -> bytes:
    text = "\n".join(json.dumps(d) for d in docs)
    for token, raw in ((INF, "1e400"), (NEG_INF, "-1e400"), (NAN, "NaN")):
        text = text.replace(json.dumps(token), raw)
    text = _NESTED.sub(lambda m: "[" * int(m.group(1)) + json.loads(f'"{m.group(2)}"') + "]" * int(m.group(1)), text)
    return text.encode("utf-8")


_ELEMENT = re.compile(rb"<((?:\w+:)?\w+)>([^<>]*)</\1>")
_READING = re.compile(rb"<((?:\w+:)?IntervalReading)>.*?</\1>", re.S)
_BLOCK = re.compile(rb"(<(?:\w+:)?IntervalBlock[^>]*>)(.*?)(</(?:\w+:)?IntervalBlock>)", re.S)
_START = re.compile(rb"(<(?:\w+:)?start>)(-?\d+)(</(?:\w+:)?start>)")


def _apply_xml(payload: bytes, ops) -> bytes:
    for op in ops:
        kind = op[0]
        if kind == "xset":
            found = list(_ELEMENT.finditer(payload))
            if found:
                m = found[op[1] % len(found)]
                payload = payload[:m.start(2)] + HOSTILE_TEXT[op[2]].encode() + payload[m.end(2):]
        elif kind == "xtime":
            found = list(_START.finditer(payload))
            if found:
                m = found[op[1] % len(found)]
                payload = payload[:m.start(2)] + str(int(m.group(2)) + SHIFTS_S[op[2]]).encode() + payload[m.end(2):]
        elif kind == "xdup":
            found = list(_READING.finditer(payload))
            if found:
                m = found[op[1] % len(found)]
                copy = m.group(0)
                if op[2]:
                    copy = re.sub(rb"<((?:\w+:)?value)>(-?\d+)</\1>", lambda v: b"<%s>%d</%s>" % (
                        v.group(1), int(v.group(2)) * 7 + 13, v.group(1)), copy, count=1)
                payload = payload[:m.end()] + copy + payload[m.end():]
        elif kind == "xreverse":
            found = list(_BLOCK.finditer(payload))
            if found:
                m = found[op[1] % len(found)]
                readings = [r.group(0) for r in _READING.finditer(m.group(2))]
                head = _READING.split(m.group(2))[0] if readings else m.group(2)
                body = head + b"".join(reversed(readings))
                payload = payload[:m.start(2)] + body + payload[m.end(2):]
        elif kind == "xdrop":
            found = list(_ELEMENT.finditer(payload))
            if found:
                m = found[op[1] % len(found)]
                payload = payload[:m.start()] + payload[m.end():]
        elif kind == "xnest":
            found = list(_ELEMENT.finditer(payload))
            if found:
                m = found[op[1] % len(found)]
                payload = payload[:m.start(2)] + b"<a>" * op[2] + m.group(2) + b"</a>" * op[2] + payload[m.end(2):]
    return payload


def _apply_bytes(payload: bytes, op) -> bytes:
    kind = op[0]
    if kind == "truncate":
        return payload[: int(len(payload) * op[1])]
    if not payload:
        return payload
    at = op[1] % len(payload)
    if kind == "flip":
        return payload[:at] + bytes([op[2]]) + payload[at + 1:]
    return payload[:at] + JUNK[op[2]] + payload[at:]
