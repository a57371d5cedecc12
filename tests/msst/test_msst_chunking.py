"""Chunked inference of converted MSST models (issue 22 item 1's proof): a file exactly one chunk long goes
through `booster convert msst` + `booster separate` as that one chunk (the module's output on it); over a
longer file `booster separate` equals MSST's chunked inference (``msst_demix``, a re-statement of MSST's
``utils/model_utils.demix``) with the same chunk and overlap; the kit's own chunking starts no chunk once an
earlier one reaches the end. Shapes: C channels, S samples, N sources.
"""
import pytest
import soundfile as sf
import torch
from msst_helpers import CHUNK, FOUR, SR, VOCALS, error_db, msst_demix, reference_model, run_reference, write_config

from booster.cli import main
from booster.msst import read_config
from booster.recipes.separation.inference import Separator, inherited_inference
from booster.training.checkpoint import load_model
from booster.training.chunking import chunk_starts, msst_apply, msst_step, tensor_reader


def _converted(tmp_path, kind, stems=VOCALS, stereo=True, num_overlap=4):
    """`booster convert msst` of a random-weight MSST-layout model -> (file, reference module, sources)."""
    cfg = write_config(tmp_path / "config.yaml", kind, stems, stereo=stereo, num_overlap=num_overlap)
    ref = reference_model(kind, read_config(cfg)["model"])
    torch.save(ref.state_dict(), tmp_path / "model.ckpt")
    out = tmp_path / "host.safetensors"
    assert main(["convert", "msst", "--config", str(cfg), "--checkpoint", str(tmp_path / "model.ckpt"),
                 "-o", str(out)]) == 0
    return out, ref, [stems["target"]] if stems["target"] else stems["instruments"]


def _separate(tmp_path, model, x, *args):
    """`booster separate` of ``x`` [C, S] written to a file -> {stem: [C, S]}."""
    sf.write(tmp_path / "song.wav", x.T.numpy(), SR, subtype="FLOAT")
    assert main(["separate", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "--model", str(model),
                 "--no-progress", *args]) == 0
    return {p.stem: torch.from_numpy(sf.read(p, dtype="float32", always_2d=True)[0].T.copy())
            for p in (tmp_path / "out" / "song").iterdir()}


def _mix(channels, samples, seed=4):
    return 0.3 * torch.randn(channels, samples, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["bs_roformer", "mel_band_roformer"])
def test_a_one_chunk_file_is_that_chunk_at_the_recorded_overlap(tmp_path, kind):
    """No --overlap: the recorded num_overlap 4 (overlap 0.75). MSST's demix would run 4 chunks over it
    (and the old kit chunking 4 too: -18 dB); one chunk is the module's output."""
    model, ref, sources = _converted(tmp_path, kind, FOUR)
    assert load_model(model, task="separation")[1]["chunking"] == {"mode": "msst", "num_overlap": 4}
    x = _mix(2, CHUNK)
    got = _separate(tmp_path, model, x)
    want = run_reference(ref, x[None])[0]                   # [N, C, S]: the original module on the one chunk
    for n, source in enumerate(sources):
        assert error_db(got[source], want[n]) < -60, source


def test_the_kit_chunking_runs_a_one_chunk_input_as_one_chunk(tmp_path):
    model, ref, _ = _converted(tmp_path, "bs_roformer")
    sep = Separator.load(model, chunking="kit")              # the kit's cross-fade, recorded overlap 0.75
    assert sep.chunking == "kit"
    x = _mix(2, CHUNK)
    assert error_db(sep.separate_tensor(x), run_reference(ref, x[None])[0]) < -60


@pytest.mark.parametrize("kind,stereo,stems,num_overlap", [
    ("bs_roformer", True, VOCALS, 4), ("mel_band_roformer", True, FOUR, 4),
    ("bs_roformer", False, FOUR, 2), ("mel_band_roformer", False, VOCALS, 3)])
def test_a_longer_file_equals_msst_chunked_inference(tmp_path, kind, stereo, stems, num_overlap):
    """Several chunks and a tail shorter than a chunk; batches of 3 chunks give MSST's batch-1 weights."""
    model, ref, sources = _converted(tmp_path, kind, stems, stereo, num_overlap)
    x = _mix(2 if stereo else 1, 3 * CHUNK + CHUNK // 3)
    got = _separate(tmp_path, model, x, "--batch", "3")
    want = msst_demix(lambda part: run_reference(ref, part), x, CHUNK, num_overlap)
    for n, source in enumerate(sources):
        assert got[source].shape == x.shape
        assert error_db(got[source], want[n]) < -60, source


def test_overlap_given_on_an_msst_model_is_its_num_overlap(tmp_path):
    """--overlap 0.5 on a num_overlap 4 model: MSST's demix with num_overlap 2 (1 / (1 - 0.5))."""
    model, ref, _ = _converted(tmp_path, "bs_roformer")
    x = _mix(2, 2 * CHUNK + 100)
    got = _separate(tmp_path, model, x, "--overlap", "0.5")["vocals"]
    fn = lambda part: run_reference(ref, part)               # noqa: E731
    assert error_db(got, msst_demix(fn, x, CHUNK, 2)[0]) < -60
    assert error_db(got, msst_demix(fn, x, CHUNK, 4)[0]) > -40      # not the recorded overlap
    assert msst_step(CHUNK, overlap=0.75) == CHUNK // 4 and msst_step(CHUNK, overlap=0.3) == int(CHUNK * 0.7)


def _context_model(chunks, starts=None):           # [K, C, S] -> [K, 2, C, S]: each sample depends on the chunk
    c = torch.cumsum(chunks, -1) / 50
    return torch.stack([torch.tanh(c) + chunks.mean(-1, keepdim=True), chunks.flip(-1)], 1)


@pytest.mark.parametrize("length", [601, 1000, 2 * 450 + 1, 4321])
def test_msst_apply_streams_msst_demix_in_bounded_blocks(length):
    x = _mix(2, length, seed=length)
    want = msst_demix(_context_model, x, 600, 4)
    for batch in (1, 3):
        blocks = []
        assert msst_apply(tensor_reader(x), length, 600, _context_model, step=150, batch_size=batch,
                          emit=blocks.append) is None
        assert max(b.shape[-1] for b in blocks) <= 600
        torch.testing.assert_close(torch.cat(blocks, -1), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("segment,step,length", [(300, 75, 1), (300, 75, 299), (300, 75, 300), (600, 450, 500)])
def test_msst_apply_runs_an_input_no_longer_than_a_chunk_as_one_chunk(segment, step, length):
    x = _mix(1, length)
    calls = []
    run = lambda chunks, starts: calls.append(starts) or _context_model(chunks)   # noqa: E731
    out = msst_apply(tensor_reader(x), length, segment, run, step=step)
    mode = "reflect" if length > segment // 2 else "constant"    # MSST's padding of a last part
    padded = torch.nn.functional.pad(x[None], (0, segment - length), mode=mode)
    assert calls == [[0]]
    torch.testing.assert_close(out, _context_model(padded)[0, ..., :length])


@pytest.mark.parametrize("segment,overlap", [(300, 0.25), (300, 0.75), (256, 0.5), (100, 0.0)])
def test_kit_chunk_starts_stop_at_the_first_chunk_reaching_the_end(segment, overlap):
    for length in [1, segment - 1, segment, segment + 1, 2 * segment, 5 * segment + 7]:
        starts, stride = chunk_starts(length, segment, overlap)
        assert starts == [k * stride for k in range(len(starts))]
        assert starts[-1] + segment >= length                        # the end is covered
        assert len(starts) == 1 or starts[-2] + segment < length      # and no chunk starts after that
    assert chunk_starts(segment, segment, overlap)[0] == [0]


def test_a_fine_tune_from_a_converted_file_keeps_its_chunking(tmp_path):
    model, _, _ = _converted(tmp_path, "mel_band_roformer", num_overlap=3)
    kept = inherited_inference(str(model))
    assert kept == {"overlap": pytest.approx(2 / 3), "chunking": {"mode": "msst", "num_overlap": 3}}
    assert inherited_inference(None) == {} and inherited_inference(str(tmp_path / "model.ckpt")) == {}
    from booster.recipes.separation.module import SeparationModule
    module = SeparationModule(host="mel_band_roformer", sources=["vocals"], sample_rate=SR, channels=2,
                              segment=0.5, pretrained=str(model))
    meta = module.description()
    assert meta["chunking"] == {"mode": "msst", "num_overlap": 3} and meta["segment"] == 0.5
    assert module.separator().chunking == "msst"


def test_a_bad_chunking_record_is_one_line(tmp_path):
    from booster.errors import CheckpointError
    model, meta = load_model(_converted(tmp_path, "bs_roformer")[0], task="separation")
    for bad in ({"mode": "msst"}, {"mode": "msst", "num_overlap": 0}, {"mode": "fancy"}, "msst"):
        with pytest.raises(CheckpointError, match="recorded chunking") as e:
            Separator(model, {**meta, "chunking": bad})
        assert "\n" not in str(e.value)
