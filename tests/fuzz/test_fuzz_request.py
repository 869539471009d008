"""The request table's fields, any value: validate() answers with a request or with BadInput
naming a field, and the CLI with exit code 2 and one line naming it, writing nothing.

Values are drawn per row of the table (steady.params.table()): the right type in and out of its
bounds, the wrong types, NaN and the infinities, text with lone surrogates (what bytes that are
not UTF-8 become), NUL, and text around the length bound.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from steady.errors import BadInput
from steady.params import GenerationRequest, Param, table
from tests.fixtures.cli import run_main
from tests.fixtures.fuzz import ANY_CHAR, SOME_TEXT, fuzz_settings

FIELDS = table()
# What BadInput may name: a field, or the CLI's name for one (--y needs --x).
NAMES = set(FIELDS) | {"y"}
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), SOME_TEXT, st.lists(st.integers(), max_size=2))


def long_text(p: Param):
    if not p.max_length:
        return SOME_TEXT
    return st.tuples(ANY_CHAR, st.integers(p.max_length - 2, p.max_length + 2)).map(lambda t: t[0] * t[1])


def value_for(p: Param):
    """A value for one row: usually of its kind (in bounds and out), sometimes anything."""
    if p.kind is bool:
        own = st.booleans()
    elif p.kind is str:
        own = st.one_of(SOME_TEXT, st.sampled_from(p.choices) if p.choices else SOME_TEXT, long_text(p))
    else:
        low, high = p.low if p.low is not None else -(2**40), p.high if p.high is not None else 2**40
        ints = st.one_of(st.integers(int(low) - 2, int(low) + 2), st.integers(int(high) - 2, int(high) + 2),
                         st.integers(int(low), int(high)), st.integers())  # fmt: skip
        own = ints if p.kind is int else st.one_of(ints, st.floats(low - 1, high + 1), st.floats())
    if p.optional:
        own = st.one_of(st.none(), own)
    return st.one_of(own, own, own, ANYTHING)


REQUESTS = st.fixed_dictionaries({}, optional={name: value_for(p) for name, p in FIELDS.items()})


ONE_FIELD = st.one_of([value_for(p).map(lambda v, name=name: {name: v}) for name, p in FIELDS.items()])


@fuzz_settings(400)
@given(st.one_of(REQUESTS, ONE_FIELD))
def test_validate_answers_a_request_or_bad_input_naming_a_field(values):
    """Many fields at once, or one (so that what one field lets through is seen: with many, some
    other field is nearly always refused first)."""
    request = GenerationRequest(**{"prompt": "x", **values})
    try:
        valid = request.validate()
    except BadInput as exc:
        assert exc.argument in NAMES, exc
        message = str(exc)
        assert "\n" not in message and message.encode("utf-8")
        return
    # What passes holds to the table, and passes again unchanged.
    for name, p in FIELDS.items():
        value = getattr(valid, name)
        if p.kind is float and value is not None:
            assert math.isfinite(value) and p.low <= value <= p.high
        if p.kind is str and value is not None:
            value.encode("utf-8")
            assert "\0" not in value and (not p.max_length or len(value) <= p.max_length)
    assert valid.validate() == valid


def _flag(p: Param) -> str:
    return next(f for f in p.flags if f.startswith("--"))


def bad_value(name: str, p: Param):
    """A command-line value that the table refuses for this row, whatever click makes of it."""
    if p.kind is str:
        bad = [SOME_TEXT.map(lambda t: t + "\udcff"), SOME_TEXT.map(lambda t: t + "\0")]
        if p.max_length:
            bad.append(st.just("y" * (p.max_length + 1)))
        if p.choices or name in ("sampler", "device"):
            bad.append(st.sampled_from(["nope", "int8", "tpu", "Euler z"]))
        return st.one_of(*bad)
    numbers = [st.integers(max_value=int(p.low) - 1), st.integers(min_value=int(p.high) + 1)]
    if p.kind is float:
        numbers += [st.sampled_from(["nan", "inf", "-inf", "NaN", "1e400"])]
    else:
        numbers += [st.sampled_from(["1.5", "abc", "", "0x10", "1e3"])]
    return st.one_of(*numbers).map(str)


VALUED = {name: p for name, p in FIELDS.items() if p.flags and p.kind is not bool}


@st.composite
def refused_command_line(draw) -> tuple[list[str], str]:
    """`steady generate` arguments with at least one value the table refuses, and that field."""
    bad_field = draw(st.sampled_from(sorted(VALUED) + ["prompt"]))
    prompt = draw(SOME_TEXT) if bad_field != "prompt" else draw(bad_value("prompt", FIELDS["prompt"]))
    args: list[str] = []
    others = draw(st.dictionaries(st.sampled_from(sorted(VALUED)), st.one_of(SOME_TEXT, st.integers().map(str)),
                                  max_size=3))  # fmt: skip
    for name, value in others.items():
        if name != bad_field:
            args.append(f"{_flag(VALUED[name])}={value}")
    if bad_field != "prompt":
        args.append(f"{_flag(VALUED[bad_field])}={draw(bad_value(bad_field, VALUED[bad_field]))}")
    for flag in ("--allow-pickle", "--until-saturated"):
        if draw(st.booleans()):
            args.append(flag)
    return ["generate", *draw(st.permutations(args)), "--", prompt], bad_field


@fuzz_settings(150)
@given(refused_command_line())
def test_the_cli_refuses_in_one_line_naming_a_field_and_writes_nothing(tmp_path, monkeypatch, capsys, case):
    argv, bad_field = case
    monkeypatch.chdir(tmp_path)  # a relative --out or --model lands here, if anywhere
    code, out = run_main(argv, capsys)
    assert code == 2, (argv, out.err)
    assert "Traceback" not in out.err
    if out.err.startswith("steady: error: "):
        assert out.err.count("\n") == 1, out.err
        named = out.err[len("steady: error: "):].split("=", 1)[0]
        assert named in NAMES | {"model", "out", "x", "STEADY_HOME"}, out.err
    else:  # click's own refusal of a value it cannot convert (--steps=abc): usage, then the error
        assert "Error: Invalid value for '" in out.err and "--" in out.err.rsplit("Error:", 1)[1], out.err
    assert out.out == ""
    assert list(tmp_path.iterdir()) == [], "nothing may be written on refusal (STEADY_HOME is in there too)"

