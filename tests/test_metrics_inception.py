"""The Inception code path end to end on a weights file the test writes (random weights, the
architecture torch-fidelity's FeatureExtractorInceptionV3 expects); and the missing-file error."""

import time
from unittest import mock

import pytest
import torch

from ldm_vs_gan.errors import MissingWeightsError
from ldm_vs_gan.metrics.features import INCEPTION_FILE, InceptionFeatures, build_extractor, extract
from ldm_vs_gan.metrics.fid import fid_from_features, inception_score_from_logits


def write_random_inception(path):
    """Build torch-fidelity's Inception without loading anything (randomly initialised), save it."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inc

    with (
        mock.patch.object(tf_inc.torch, "load", lambda *a, **k: {}),
        mock.patch.object(tf_inc.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, **k: None),
    ):
        torch.manual_seed(0)
        net = tf_inc.FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path="x"
        )
    torch.save(net.state_dict(), path)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("inc") / INCEPTION_FILE
    write_random_inception(path)
    return path


def test_inception_path_end_to_end(weights):
    torch.manual_seed(0)
    ext = build_extractor("inception", inception_weights=str(weights))
    assert ext.num_features == 2048 and len(ext.sha256) == 64 and "299" in ext.resize
    real = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    fake = torch.randint(0, 128, (6, 3, 32, 32), dtype=torch.uint8)
    fr = extract(ext, real, batch_size=3)
    assert fr.shape == (6, 2048) and torch.isfinite(fr).all()
    # FID itself on the 64-d tap of the same file: a 2048-d eigendecomposition costs ~20 s on this
    # CPU, and the Fréchet arithmetic is checked against SciPy in test_metrics_fid.py.
    ext64 = InceptionFeatures(weights, output="64")
    f64r, f64f = extract(ext64, real), extract(ext64, fake)
    assert fid_from_features(f64r, f64r) == pytest.approx(0.0, abs=1e-3)
    assert fid_from_features(f64r, f64f) > 0
    logits = extract(InceptionFeatures(weights, output="logits_unbiased"), fake)
    assert logits.shape == (6, 1008)
    mean, _ = inception_score_from_logits(logits, splits=2)
    assert mean >= 1.0 - 1e-6


def test_missing_inception_weights_is_one_clear_error(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(MissingWeightsError) as e:
        build_extractor("inception", inception_weights=str(tmp_path / "nope.pth"))
    assert time.perf_counter() - t0 < 1.0
    msg = str(e.value)
    assert INCEPTION_FILE in msg and "--inception-weights" in msg and "nope.pth" in msg


def test_refuses_pickled_code_or_wrong_file(tmp_path):
    bad = tmp_path / INCEPTION_FILE
    torch.save({"something": torch.zeros(1)}, bad)
    with pytest.raises(MissingWeightsError, match="not torch-fidelity's Inception"):
        InceptionFeatures(bad)
