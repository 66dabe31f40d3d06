"""Keywords reach the speech synthesisers as data only, and every clip depends on its own inputs only."""
import numpy as np
import pytest
import torch

from modalities.audio.params import SPEECH_COMMANDS_KEYWORDS
from modalities.audio.readers import resample
from modalities.audio.speech import ENGINES, Utterance, plan, synthesise
from pipeline.config.params import ParamsError, parse

VOICE = {"espeak-ng": "en-us+m1", "flite": "kal", "festival": "kal_diphone"}


def scheme_injection(marker) -> str:
    return f'x")) (system "touch {marker}") (set! zz (list "'


def audio_params(**audio):
    return parse({"modalities": {"audio": audio}, "tasks": {"kws": {"modality": "audio"}}})


def test_params_reject_a_keyword_that_is_not_plain_words(tmp_path):
    marker = tmp_path / "pwned"
    for bad in (scheme_injection(marker), 'say "hi"', "-w", "yes\nno"):
        with pytest.raises(ParamsError, match=r"modalities\.audio\.keywords: keywords .* only letters, digits, "
                                              r"spaces, apostrophes and hyphens") as error:
            audio_params(keywords=["yes", bad])
        assert repr(bad) in str(error.value)
    assert not marker.exists()
    assert audio_params(keywords=["rock'n'roll", "follow-up", "two words", "7", "über"]).modalities


@pytest.mark.parametrize("engine", ENGINES)
def test_hostile_text_is_spoken_as_text(engine, tmp_path):
    scheme, option = tmp_path / "scheme-ran", tmp_path / "option-ran"
    words = [scheme_injection(scheme), f"-w{option}", 'a "quoted" word']
    spoken = synthesise([Utterance(engine, w, 0, VOICE[engine], 1.0, 120.0) for w in words], workers=2)
    assert not scheme.exists() and not option.exists()
    for word, (waveform, rate) in zip(words, spoken):
        assert len(waveform) > rate // 10 and np.abs(waveform).max() > 0.01, (engine, word)


@pytest.mark.parametrize("engine", ENGINES)
def test_an_utterance_sounds_the_same_whatever_its_neighbours(engine):
    # festival utterances 645-652 of the default plan: in one festival process, the last came out differently
    # from when it was synthesised alone
    utterances = [u for u in plan(SPEECH_COMMANDS_KEYWORDS, 64, np.random.default_rng(0)) if u.engine == engine]
    target = utterances[652]
    with_neighbours = synthesise(utterances[645:653], workers=2)[-1]
    with_others = synthesise([target, utterances[100], utterances[7]], workers=1)[0]
    assert with_neighbours[1] == with_others[1]
    assert np.array_equal(with_neighbours[0], with_others[0])


def test_resampling_does_not_depend_on_torch_threads():
    threads = torch.get_num_threads()
    rng = np.random.default_rng(0)
    try:
        for rate in (14400, 17600, 22050):
            waveform = rng.standard_normal(11025).astype(np.float32)
            out = {}
            for n in (1, 2):
                torch.set_num_threads(n)
                out[n] = resample(waveform, rate, 16000)
                assert torch.get_num_threads() == n  # restored after the resample
            assert np.array_equal(out[1], out[2]), rate
    finally:
        torch.set_num_threads(threads)
