"""What operators see and set of per-model placement, without servers: `tarn status`'s model
lines and the rules of a model's copies wanted (POST /model-copies)."""
from __future__ import annotations

import asyncio

import pytest

from tarn_shared.errors import ConfigError

from tarn_am import target as tg
from tarn_am.cli.status_slots import model_lines
from tarn_am.model_copies import ModelPlan, ModelTarget
from tarn_am.model_phase import ModelPlacer
from tarn_am.settings import AmSettings

PLAN = ModelPlan(models={"bert": ModelTarget(min_copies=1, max_copies=2, memory_bytes=1 << 30)})


def test_status_prints_each_models_copies_where_they_are_what_is_in_flight_and_why_some_are_missing():
    state = {"model_placement": [
        {"name": "bert", "wanted": 2, "held": ["c1"], "loading": ["c2"], "unloading": [], "missing": 0, "why": []},
        {"name": "llm", "wanted": 1, "held": [], "loading": [], "unloading": [], "missing": 1,
         "why": ["1 copies wait for new instances"]}]}
    assert model_lines(state) == ["model bert: 1/2 copies on c1, loading on c2",
                                  "model llm: 0/1 copies on none, 1 missing; 1 copies wait for new instances"]
    assert model_lines({"model_placement": []}) == [] and model_lines({}) == []  # the default mode prints none


def test_copies_wanted_are_refused_outside_the_models_min_max_or_for_a_model_not_deployed():
    settings = AmSettings(deployment="d", slots=["s=h"], placement="per-model", model_plan=PLAN)
    placer = ModelPlacer(settings, bus=None, app_id="a")
    assert asyncio.run(placer.set_copies("bert", 2)) == 2 and placer.wanted == {"bert": 2}
    with pytest.raises(tg.Refusal, match=r"within 1\.\.2"):
        asyncio.run(placer.set_copies("bert", 3))
    with pytest.raises(tg.Refusal, match="not one of this deployment's models"):
        asyncio.run(placer.set_copies("gpt", 1))
    assert placer.wanted == {"bert": 2}


def test_per_model_mode_without_a_plan_is_a_configuration_error_at_start():
    with pytest.raises(ConfigError, match="per-model needs TARN_AM_MODEL_PLAN"):  # the supervisor stops, no restart
        ModelPlacer(AmSettings(deployment="d", slots=["s=h"], placement="per-model"), bus=None, app_id="a")
