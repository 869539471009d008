"""The generation schema: every bad value is refused with the argument and the value named."""

import pytest

from steady.errors import BadInput
from steady.params import SAMPLERS, GenerationRequest, ImageParams, canonical_sampler


def test_defaults_pass():
    request = GenerationRequest(prompt="a red circle").validate()
    assert (request.sampler, request.steps) == (None, None)  # the model's own, filled in by steady.request.check
    assert GenerationRequest(prompt="a", sampler="k_euler_a").validate().sampler == "Euler a"


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("steps", 0, "steps=0"),
        ("steps", 151, "steps=151"),
        ("cfg_scale", -1.0, "cfg_scale=-1.0"),
        ("cfg_scale", 31, "cfg_scale=31"),
        ("width", 513, "multiple of 8"),
        ("height", 4104, "height=4104"),
        ("width", 0, "width=0"),
        ("seed", -2, "seed=-2"),
        ("seed", 2**32, "seed=4294967296"),
        ("sampler", "Euler z", "sampler='Euler z'"),
        ("clip_skip", 0, "clip_skip=0"),
        ("device", "tpu", "device='tpu'"),
        ("dtype", "int8", "dtype='int8'"),
        ("steps", "20", "whole number"),
    ],
)
def test_out_of_range_is_named(field, value, needle):
    request = GenerationRequest(prompt="x", **{field: value})
    with pytest.raises(BadInput) as info:
        request.validate()
    assert info.value.argument == field
    assert needle in str(info.value)


def test_empty_prompt_without_negative_is_refused():
    with pytest.raises(BadInput, match="prompt"):
        GenerationRequest(prompt="  ").validate()
    GenerationRequest(prompt="", negative_prompt="blurry").validate()


def test_run_cap_explains_why_and_how():
    with pytest.raises(BadInput) as info:
        GenerationRequest(prompt="x", n_images=31).validate()
    message = str(info.value)
    assert "variety saturates" in message and "--max-images" in message
    GenerationRequest(prompt="x", n_images=31, max_images=40).validate()


@pytest.mark.parametrize("alias,name", [("euler_ancestral", "Euler a"), ("k_euler_a", "Euler a"),
                                        ("dpmpp_2m_karras", "DPM++ 2M Karras"), ("dpm++ sde karras", "DPM++ SDE Karras"),
                                        ("uni_pc", "UniPC"), ("EULER", "Euler"), ("lcm", "LCM"),
                                        ("dpmpp_sde", "DPM++ SDE"), ("dpmpp_2m_sde_karras", "DPM++ 2M SDE Karras"),
                                        ("euler_ancestral_sgm_uniform", "Euler a SGM Uniform")])
def test_sampler_aliases(alias, name):
    assert canonical_sampler(alias) == name


def test_image_params_round_trip_and_reproduce():
    params = ImageParams("p", "n", 20, 7.0, 64, 64, 5, "Euler", 2, "m", "abcdef0123", "sd1", "cpu", "float32")
    again = ImageParams.from_dict(params.to_dict() | {"unknown_future_field": 1})
    assert again == params
    request = again.request()
    assert (request.seed, request.width, request.clip_skip) == (5, 64, 2)
    assert {"LCM", "TCD", "DPM++ SDE", "DPM++ 2M SDE Karras", "Euler a SGM Uniform"} <= set(SAMPLERS)


def test_the_table_is_the_one_source_of_every_way_in():
    """The CLI's options, our API's model and the A1111 mapping are built from the table: a field
    with flags is an option of `steady generate` with the table's default and help, an API field is
    in the page's schema, and the A1111 names map to the same fields."""
    import click

    from steady.cli.generate import generate_command
    from steady.params import table
    from steady.web.api import GenerateBody

    rows = table()
    options = {p.name: p for p in generate_command.params if isinstance(p, click.Option)}
    for name, row in rows.items():
        if row.flags:
            assert name in options, name
            assert set(row.flags) <= set(options[name].opts + options[name].secondary_opts), name
            assert options[name].help == row.help
    assert set(GenerateBody.model_fields) == {n for n, r in rows.items() if r.api}
    assert GenerateBody.model_fields["steps"].default is None and GenerateBody.model_fields["prompt"].is_required()
    assert {r.a1111 for r in rows.values() if r.a1111} >= {"prompt", "negative_prompt", "steps", "cfg_scale", "seed"}


def test_cfg_has_one_name_and_an_alias_everywhere():
    """`--cfg` and `--cfg-scale` are the same option in generate and the measuring commands."""
    import click

    from steady.cli.bench import bench_command
    from steady.cli.evaliterate import eval_iterate_command
    from steady.cli.evaltiny import eval_tiny_command
    from steady.cli.generate import generate_command

    for command in (generate_command, eval_tiny_command, eval_iterate_command):
        (cfg,) = [p for p in command.params if isinstance(p, click.Option) and p.name == "cfg_scale"]
        assert cfg.opts == ["--cfg", "--cfg-scale"], command.name
    assert not [p for p in bench_command.params if p.name == "cfg_scale"]  # bench uses the model's CFG


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_cfg_scale_must_be_finite(value):
    with pytest.raises(BadInput) as info:
        GenerationRequest(prompt="x", cfg_scale=value).validate()
    assert info.value.argument == "cfg_scale" and "finite" in info.value.why


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_prompts_have_a_maximum_length(field):
    from steady.params import MAX_PROMPT_CHARS, table

    assert table()[field].max_length == MAX_PROMPT_CHARS == 20_000
    GenerationRequest(**{"prompt": "x", field: "y" * MAX_PROMPT_CHARS}).validate()
    with pytest.raises(BadInput) as info:
        GenerationRequest(**{"prompt": "x", field: "y" * (MAX_PROMPT_CHARS + 1)}).validate()
    assert info.value.argument == field and "20,001 characters" in info.value.why
    assert len(str(info.value)) < 300  # one line, not the whole prompt


def test_every_text_field_has_a_bound():
    from steady.params import table

    assert all(p.max_length > 0 for p in table().values() if p.kind is str and not p.choices)


@pytest.mark.parametrize("field", ["prompt", "negative_prompt", "out_dir", "model", "x_axis"])
@pytest.mark.parametrize("text,why", [("a\udcffb", "not valid UTF-8"), ("a\x00b", "NUL")])
def test_text_that_cannot_be_stored_is_refused(field, text, why):
    """Bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape); SQLite and PNG
    text chunks refuse them, and a NUL cannot be in a path or a tEXt chunk."""
    with pytest.raises(BadInput) as info:
        GenerationRequest(**{"prompt": "x", field: text}).validate()
    assert info.value.argument == field and why in info.value.why
    str(info.value).encode("utf-8")  # the message itself can be printed


def test_schedule_type_folds_into_the_sampler():
    """A1111's Schedule type, given beside the sampler, names the combined sampler; a pair that does
    not exist is refused naming schedule_type."""
    request = GenerationRequest("p", sampler="euler_a", schedule_type="SGM Uniform").validate()
    assert (request.sampler, request.schedule_type) == ("Euler a SGM Uniform", "Automatic")
    assert GenerationRequest("p", sampler="DPM++ 2M", schedule_type="Karras").validate().sampler == "DPM++ 2M Karras"
    assert GenerationRequest("p", sampler="DPM++ 2M Karras", schedule_type="SGM Uniform").validate().sampler == (
        "DPM++ 2M SGM Uniform")
    with pytest.raises(BadInput, match="schedule_type"):
        GenerationRequest("p", sampler="LCM", schedule_type="Karras").validate()
