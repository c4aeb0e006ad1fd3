"""The committed guard artifact is the one the training script produces from the committed corpus
and ../shared/guard (minutes: embeds the whole training set unless the embedding cache is warm)."""

import json

import numpy as np
import pytest

from medgemma.guard import train as training
from medgemma.guard.model import ARTIFACT_CARD, ARTIFACT_WEIGHTS


@pytest.mark.slow
def test_training_reproduces_the_committed_artifact(tmp_path):
    weights_path, card_path = training.main(tmp_path)
    committed, trained = np.load(ARTIFACT_WEIGHTS), np.load(weights_path)
    assert sorted(committed.files) == sorted(trained.files)
    for name in committed.files:
        if committed[name].dtype.kind in "fc":
            np.testing.assert_allclose(trained[name].astype(np.float32), committed[name].astype(np.float32),
                                       rtol=1e-3, atol=1e-3, err_msg=name)
        else:
            assert (trained[name] == committed[name]).all(), name
    assert json.loads(card_path.read_text()) == json.loads(ARTIFACT_CARD.read_text())
