"""`steady eval-tiny --set ... --append ...`: the extension's prompts, with a shipped LoRA's tag
added to each as generated and left out of what the checker reads."""

from __future__ import annotations

import json

from tests.fixtures.cli import run_main


def test_eval_tiny_on_the_star_with_the_shipped_lora(capsys) -> None:
    code, out = run_main(["eval-tiny", "--set", "star-large", "--seen", "2", "--append", " <lora:tiny-lcm:1>",
                          "--sampler", "LCM", "--steps", "4", "--cfg-scale", "1", "--json"], capsys)  # fmt: skip
    assert code == 0, out.err
    report = json.loads(out.out)
    assert report["set"] == "star-large" and report["append"] == " <lora:tiny-lcm:1>"
    assert report["n_images"] == 2 and report["variety_images"] == 0
    assert set(report["accuracy"]) == {"shape", "colour", "size", "position", "background"}


def test_eval_tiny_refuses_an_unknown_set(capsys) -> None:
    code, out = run_main(["eval-tiny", "--set", "hexagon"], capsys)
    assert code == 2 and "hexagon" in out.err
