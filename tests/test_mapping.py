"""The shipped score mapping: monotone by construction, read with clear errors, named in fingerprints."""

import json

import numpy as np
import pytest

from grader.errors import GraderError
from grader.grade import Grader
from grader.mapping import POINT_FEATURES, SHIPPED_PATH, load_mapping


def test_the_shipped_mapping_is_monotone_in_every_feature():
    mapping = load_mapping(SHIPPED_PATH)
    assert mapping.name == "evidence@v1" and mapping.features == list(POINT_FEATURES)
    assert min(mapping.coef) >= 0 and np.all(np.diff(mapping.knots_y) >= 0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (200, len(POINT_FEATURES)))
    for f in range(len(POINT_FEATURES)):
        more = x.copy()
        more[:, f] = np.minimum(1.0, more[:, f] + 0.2)
        assert np.all(mapping.probability(more) >= mapping.probability(x))
    e = np.linspace(0, 1, 101)
    assert np.all(np.diff(mapping.share(e)) >= 0) and 0 <= mapping.share(0.0) <= mapping.share(1.0) <= 1


def test_a_mapping_with_a_negative_weight_is_refused_by_name(tmp_path):
    data = json.loads(SHIPPED_PATH.read_text(encoding="utf-8"))
    data["coef"][2] = -0.5
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(GraderError, match=r"bad.json: .*coef must be >= 0"):
        load_mapping(path)
    with pytest.raises(GraderError, match="GRADER_SCORE_MAPPING"):
        load_mapping(tmp_path / "missing.json")


def test_the_setting_names_the_mapping_in_the_fingerprint(settings, grader, rubrics):
    rubric = rubrics["max-pooling"]
    linear = Grader(settings.model_copy(update={"score_mapping": "linear"}), encoder=grader.encoder)
    answer = "It keeps the largest value of each window, so the feature maps get smaller."
    default, plain = grader.grade(rubric, answer), linear.grade(rubric, answer)
    assert default.fingerprint.calibration == "evidence@v1" and plain.fingerprint.calibration == "linear"
    assert all(v.probability is not None for v in default.key_points)
    assert all(v.probability is None for v in plain.key_points)
    assert [v.features for v in default.key_points] == [v.features for v in plain.key_points]
