"""App-side preprocessing: turn a raw input (an image file, a clip, a sound, a text) into what an exported model takes.

Each exported model says in its metadata which modality it serves ("modality") and how its input
is prepared ("preprocessing", "input_shape", "input_dtype"). Preprocessing functions are looked
up by that modality in a registry (devices/preprocess/base.py), so a new modality is one module
that registers its function, imported below, and devices/predict.py does not change:

    @register("audio")
    def preprocess_audio(item, spec: InputSpec) -> np.ndarray: ...   # one sample, batch axis of 1

A preprocessing function gets one raw input and the model's InputSpec and returns one sample
shaped (1, *spec.shape[1:]) with spec.dtype. No torch here.
"""
from devices.metadata import decode_value
from devices.preprocess import audio, image, text, video  # noqa: F401  (each registers its modality)
from devices.preprocess.base import (InputSpec, PreprocessError, Preprocessor, preprocess, preprocessor_for,
                                     register, registered_modalities)

__all__ = ["InputSpec", "PreprocessError", "Preprocessor", "decode_value", "preprocess", "preprocessor_for",
           "register", "registered_modalities"]
