from .crafx2 import CRAFx2  # noqa: F401  (mixing)
from .mix_wave_unet import MixWaveUNet  # noqa: F401  (mixing)
from .transcriber import OnsetsAndFrames, ShallowTranscriber, build_transcriber  # noqa: F401  (transcription)
