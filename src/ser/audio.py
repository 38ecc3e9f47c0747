"""The audio front end: find, decode, check, mix to mono, resample, trim, pad, and the log-mel spectrogram.

Every reader of audio (the fetch stage's manifest, augment, melspec, `ser predict`) goes through this module:
one rule for what counts as a usable file, one message for each kind of fault.

    path -> decode (dr_flac or libsndfile; checked) -> convert_audio (mono, soxr to the rate)
         -> prepare (trim_silence, pad_or_trim) -> LogMel (batched, in torch)
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import miniaudio
import numpy as np
import soundfile as sf
import soxr
import torch

from ser.errors import UserError
from ser.params import AudioParams, MelspecParams, from_dict, section

# power floor before the log (librosa.power_to_db's default is 1e-10, -100 dB): far enough below any clip's
# top_db floor that digital silence lands on that relative floor at any gain, so a quieter copy of a clip
# differs by a constant in dB, which normalisation removes (float32 holds it: its smallest normal is 1e-38)
AMIN = 1e-20
RESAMPLE_QUALITY = "HQ"  # soxr's high quality, for whole files and streams alike

# Extensions searched for in folders, per libsndfile major format; only the formats this libsndfile reads
# count. (Files named one by one are tried whatever their extension.)
FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "WAV": (".wav",),
    "WAVEX": (".wav",),
    "W64": (".w64",),
    "RF64": (".rf64",),
    "FLAC": (".flac",),
    "OGG": (".ogg", ".oga", ".opus"),
    "AIFF": (".aif", ".aiff", ".aifc"),
    "CAF": (".caf",),
    "AU": (".au", ".snd"),
    "MP3": (".mp3",),
}
# libsndfile's log line for a WAV data chunk shorter than its header says: "data : 105706 (should be 52831)"
TRUNCATED_WAV = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# data sizes that streaming writers put in the header when they cannot know the length: not truncation
UNKNOWN_DATA_SIZES = frozenset({0, 0x7FFFFFFF, 0xFFFFFFFF})
# the problems that a file and an in-memory signal share
NO_SAMPLES = "the file holds no audio samples"
NOT_FINITE = "the audio holds NaN or infinite samples"
IS_FOLDER = "is a folder, not an audio file"
SOUNDFILE_ERRORS = (sf.LibsndfileError, RuntimeError, ValueError)  # what libsndfile raises for a bad file


@section
class FrontEndConfig:
    """Everything that turns a file into the model's input; saved with the model so prediction matches."""

    audio: AudioParams  # sample rate, clip duration, silence trimming, silence level
    melspec: MelspecParams  # framing, window, mel bands, pre-emphasis, dB floor

    def __post_init__(self) -> None:
        if (problem := frontend_problem(self.audio, self.melspec)) is not None:
            raise ValueError(problem)

    @property
    def n_samples(self) -> int:
        """Samples per clip: `duration` seconds at `sample_rate`."""
        return self.audio.clip_samples

    @property
    def n_frames(self) -> int:
        """Frames per clip with centred framing: one per hop, plus one."""
        return 1 + self.n_samples // self.melspec.hop_length

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, audio: AudioParams, melspec: MelspecParams, where: str) -> FrontEndConfig:
        """The config of two loaded sections; ParamsError naming `where` (the params file) if they disagree."""
        return from_dict(cls, {"audio": audio, "melspec": melspec}, where)

    @classmethod
    def from_dict(cls, raw: dict, where: str = "front-end config") -> FrontEndConfig:
        """The config from `as_dict`'s form (a bundle, frontend.json); ParamsError naming `where` if invalid."""
        return from_dict(cls, raw, where)


def frontend_problem(audio: AudioParams, melspec: MelspecParams) -> str | None:
    """What is wrong with audio and melspec together, naming the keys; None if nothing: the mel bands within
    0 .. sample_rate / 2, a window scipy knows, a frame no longer than a clip."""
    nyquist = audio.sample_rate / 2
    fmax = nyquist if melspec.fmax is None else melspec.fmax
    if fmax > nyquist:
        return f"melspec.fmax {fmax:g} Hz is above half of audio.sample_rate ({nyquist:g} Hz): lower it, or null"
    if melspec.fmin >= fmax:
        return f"melspec.fmin {melspec.fmin:g} Hz must be below melspec.fmax ({fmax:g} Hz)"
    if melspec.n_fft > audio.clip_samples:
        return f"melspec.n_fft {melspec.n_fft} is longer than a clip ({audio.clip_samples} samples of audio.duration)"
    try:
        stft_window(melspec.window, melspec.n_fft)
    except (ValueError, TypeError) as error:
        return f"melspec.window {melspec.window!r} is not a window scipy.signal.get_window knows ({error})"
    return None


class AudioError(UserError, ValueError):
    """A file (or signal) that cannot be used as audio: `path: problem`, one line."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


# ------------------------------------------------------------------------------------------- finding files


def audio_extensions() -> frozenset[str]:
    """Extensions searched for in folders: those of the formats this libsndfile reads."""
    readable = sf.available_formats()
    return frozenset(ext for name, extensions in FORMAT_EXTENSIONS.items() if name in readable for ext in extensions)


def find_audio(folder: Path, unreadable: Callable[[AudioError], None] | None = None) -> list[Path]:
    """The audio files below `folder`, recursively and through links to folders, sorted; names starting with
    "." (and what is below them) are skipped.

    Each folder is searched once, so a link loop ends and a folder linked twice is not counted twice: under its
    real path if that is below `folder` (real folders are searched before links), else under the first link in
    sorted order. Anything with an audio extension that is not a folder is listed, also a broken link or a FIFO:
    decoding names what is wrong with it, rather than the search dropping it unseen. A folder that cannot be
    listed is an AudioError naming it, raised, or given to `unreadable` and the search goes on; a missing
    `folder` holds nothing.
    """
    if not folder.is_dir():
        return []
    extensions = audio_extensions()
    found, searched = [], set()

    def on_error(error: OSError) -> None:
        problem = AudioError(error.filename, f"cannot search this folder ({error.strerror or error})")
        if unreadable is None:
            raise problem
        unreadable(problem)

    for root, folders, files in os.walk(folder, onerror=on_error, followlinks=True):
        status = os.stat(root)
        if (status.st_dev, status.st_ino) in searched:  # reached again through a link
            folders.clear()
            continue
        searched.add((status.st_dev, status.st_ino))
        visible = [name for name in folders if not name.startswith(".")]
        folders[:] = sorted(visible, key=lambda name: (os.path.islink(os.path.join(root, name)), name))
        found += [
            Path(root, name) for name in files if not name.startswith(".") and Path(name).suffix.lower() in extensions
        ]
    return sorted(found)


# ------------------------------------------------------------------------------------- decoding and checks


def peak_dbfs(samples: np.ndarray) -> float:
    """The loudest sample, in dB re full scale (-inf for digital silence or no samples): the one measure of
    level that silence is judged by (`audio.silence_dbfs`)."""
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    return 20.0 * float(np.log10(peak)) if peak > 0 else float("-inf")


def check_samples(samples: np.ndarray, name: str | Path) -> np.ndarray:
    """`samples` if usable; AudioError naming `name` if it holds no samples or NaN / infinite values."""
    if samples.size == 0:
        raise AudioError(name, NO_SAMPLES)
    if not np.isfinite(samples).all():
        raise AudioError(name, NOT_FINITE)
    return samples


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """The header of an audio file, after checking that it is a readable, complete file with samples: the
    first thing every reader does.

    Raises AudioError naming the file for a missing, non-regular, empty, unopenable (permissions), unreadable,
    truncated (WAV) or sample-less file.
    """
    path = Path(path)
    try:
        status = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise AudioError(path, f"a broken link (to {os.readlink(path)}): no such file") from None
        raise AudioError(path, "no such file") from None
    except OSError as error:
        raise AudioError(path, f"{error.strerror or error}") from error
    if stat.S_ISDIR(status.st_mode):
        raise AudioError(path, IS_FOLDER)
    if not stat.S_ISREG(status.st_mode):
        raise AudioError(path, "not a regular file")
    if status.st_size == 0:
        raise AudioError(path, "the file is empty (0 bytes)")
    try:  # libsndfile would say only "System error."
        os.close(os.open(path, os.O_RDONLY))
    except PermissionError:
        raise AudioError(path, "permission denied: this user cannot read the file; check its permissions") from None
    except OSError as error:
        raise AudioError(path, f"cannot open the file ({error.strerror or error})") from None
    try:
        info = sf.info(str(path))
    except SOUNDFILE_ERRORS as error:
        raise AudioError(path, f"not readable as audio ({getattr(error, 'error_string', error)})") from error
    truncated = TRUNCATED_WAV.search(info.extra_info)
    if truncated:
        declared, present = int(truncated[1]), int(truncated[2])
        if declared not in UNKNOWN_DATA_SIZES and present < declared:
            raise AudioError(path, f"the file is truncated (its header promises {declared} bytes, it holds {present})")
    if info.frames == 0:
        raise AudioError(path, NO_SAMPLES)
    return info


def decode_whole_flac(path: Path) -> tuple[np.ndarray, int] | None:
    """A FLAC file through dr_flac (miniaudio): (samples (n, channels) float32, native rate), or None unless
    it decoded every frame the header declares.

    dr_flac decodes faster than libsndfile into the same float32 samples, bit for bit (tests check; the
    benchmark times both), but on a truncated or corrupt file it returns what it could decode without an
    error. So a file that is short of its declared length, of unknown length, or not FLAC at all is left to
    libsndfile, which decodes it or names the problem.
    """
    try:
        declared = miniaudio.flac_get_file_info(str(path)).num_frames  # from the STREAMINFO header; 0: unknown
        decoded = miniaudio.flac_read_file_f32(str(path))
    except (miniaudio.DecodeError, OSError):
        return None
    if declared == 0 or decoded.num_frames != declared:
        return None
    samples = np.frombuffer(decoded.samples, dtype=np.float32).reshape(-1, decoded.nchannels)  # de-interleaved
    return samples, decoded.sample_rate


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a whole file: (samples (n, channels) float32 in [-1, 1] for integer formats, native rate).

    Any format libsndfile reads, after audio_info's checks; FLAC through the faster dr_flac when it decodes
    the file whole. Raises AudioError naming the file for every kind of unusable file (see audio_info and
    check_samples).
    """
    path = Path(path)
    audio_info(path)
    decoded = decode_whole_flac(path) if path.suffix.lower() == ".flac" else None
    if decoded is None:
        try:
            decoded = sf.read(path, dtype="float32", always_2d=True)
        except SOUNDFILE_ERRORS as error:
            raise AudioError(path, f"cannot decode audio ({getattr(error, 'error_string', error)})") from error
    samples, native_rate = decoded
    return check_samples(samples, path), native_rate


def mono(samples: np.ndarray) -> np.ndarray:
    """The mean of a signal's channels: (n,) or (n, channels) -> (n,)."""
    return samples if samples.ndim == 1 else samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1)


def convert_audio(
    samples: np.ndarray, native_rate: int, sample_rate: int, name: str | Path = "<samples>"
) -> np.ndarray:
    """Any signal, (n,) or (n, channels) at `native_rate`, as the front end wants it: the checked mean of its
    channels, resampled (soxr) to `sample_rate`: float32 (m,)."""
    signal = mono(check_samples(np.asarray(samples, dtype=np.float32), name))
    if native_rate != sample_rate:
        signal = soxr.resample(signal, native_rate, sample_rate, quality=RESAMPLE_QUALITY)
    return signal.astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """A whole file decoded and converted: float32 mono samples (n,) at `sample_rate`; AudioError if unusable."""
    return convert_audio(*decode(path), sample_rate, path)


def stream_audio(path: str | Path, sample_rate: int, block_s: float) -> Iterator[np.ndarray]:
    """A file decoded block by block (libsndfile), converted as load_audio does with a streaming resampler.

    Yields float32 mono chunks (m,) at `sample_rate`; together they equal load_audio(path, sample_rate), and
    memory stays about one block whatever the file's length. Raises AudioError naming the file for the faults
    load_audio reports, also when a later block turns out bad.
    """
    path = Path(path)
    audio_info(path)
    try:
        with sf.SoundFile(str(path)) as file:
            native_rate = file.samplerate
            block_frames = max(1, round(block_s * native_rate))
            resampler = None
            if native_rate != sample_rate:
                resampler = soxr.ResampleStream(native_rate, sample_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
            while True:
                block = file.read(block_frames, dtype="float32", always_2d=True)  # (frames, channels)
                last = len(block) < block_frames
                if not np.isfinite(block).all():
                    raise AudioError(path, NOT_FINITE)
                chunk = mono(block)  # (frames,)
                if resampler is not None:
                    chunk = resampler.resample_chunk(chunk, last=last)
                if len(chunk):
                    yield chunk
                if last:
                    return
    except AudioError:
        raise
    except SOUNDFILE_ERRORS as error:
        raise AudioError(path, f"cannot decode audio ({getattr(error, 'error_string', error)})") from error


def write_audio(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono samples (n,) in [-1, 1] as 16-bit PCM in the format of the file's extension (FLAC for
    .flac), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, sample_rate, subtype="PCM_16")


def sliding_windows(chunks: Iterable[np.ndarray], size: int, hop: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start, window) pairs: `size` samples every `hop` samples, then one window aligned to the end if the
    regular ones stop short of it. A signal of at most `size` samples gives one window: all of it.

    The signal comes in chunks (m,) of any length and is never held whole: memory stays about size + one chunk.
    For a signal of n > size samples: 1 + ceil((n - size) / hop) windows.
    """
    buffer = np.zeros(0, dtype=np.float32)
    offset = 0  # the signal index of buffer[0]
    next_start, last_start = 0, None
    for chunk in chunks:
        buffer = np.concatenate([buffer, chunk])
        while next_start + size <= offset + len(buffer):
            yield next_start, buffer[next_start - offset : next_start - offset + size].copy()
            last_start, next_start = next_start, next_start + hop
        keep_from = max(offset, min(next_start, offset + len(buffer) - size))  # the last `size` may end the signal
        buffer, offset = buffer[keep_from - offset :], keep_from
    end = offset + len(buffer)
    if last_start is None and end:
        yield 0, buffer.copy()
    elif last_start is not None and last_start + size < end:
        yield end - size, buffer[end - size - offset :].copy()


# ------------------------------------------------------------------------------------ trimming and padding


TRIM_FRAME, TRIM_HOP = 2048, 512  # librosa.effects.trim's defaults: RMS over 128 ms frames every 32 ms at 16 kHz
# RMS floor before the log: librosa's is 1e-5 (-100 dBFS), which a quiet recording's loudest frame minus top_db
# reaches, and then nothing is trimmed; this one is far below any frame but digital silence, so the cut is the
# same at any gain
TRIM_AMIN = 1e-10


def trim_silence(samples: np.ndarray, top_db: float | None) -> np.ndarray:
    """Cut leading and trailing audio more than `top_db` dB below the clip's peak frame.

    librosa.effects.trim(samples, top_db=top_db): the same centred RMS frames of TRIM_FRAME samples every
    TRIM_HOP, 20 log10 (floored at TRIM_AMIN, not librosa's 1e-5), relative to the loudest frame; tests check
    it cuts where librosa does on real clips. Each frame's energy is summed from TRIM_FRAME / TRIM_HOP blocks
    of TRIM_HOP squared samples, so every sample is squared once instead of once per overlapping frame (the
    sums may differ from librosa's in the last bit). Written out because importing librosa.effects and compiling its
    numba code is slow, and every process that trims would pay it: each `ser predict`, each stage worker.
    An all-silent clip (nothing above the threshold) is returned whole.
    """
    if top_db is None:
        return samples
    n_frames = 1 + samples.shape[-1] // TRIM_HOP  # as librosa frames the signal padded by TRIM_FRAME // 2 a side
    # squares of the signal padded by TRIM_FRAME // 2 a side, and zeros up to whole blocks of TRIM_HOP
    n_blocks = -(-(samples.shape[-1] + TRIM_FRAME) // TRIM_HOP)
    squares = np.zeros(n_blocks * TRIM_HOP, dtype=samples.dtype)
    np.square(samples, out=squares[TRIM_FRAME // 2 : TRIM_FRAME // 2 + samples.shape[-1]])
    blocks = squares.reshape(n_blocks, TRIM_HOP).sum(axis=1)
    energy = sum(blocks[i : i + n_frames] for i in range(TRIM_FRAME // TRIM_HOP))  # (n_frames,)
    rms = np.sqrt(energy / TRIM_FRAME)
    db = 20.0 * np.log10(np.maximum(TRIM_AMIN, rms))
    loud = np.flatnonzero(db - db.max() > -top_db)
    if loud.size == 0:
        return samples
    return samples[loud[0] * TRIM_HOP : min(samples.shape[-1], (loud[-1] + 1) * TRIM_HOP)]


SOUND_FRAME_S, SOUND_HOP_S = 0.025, 0.010  # frames in which sound_seconds measures: 25 ms every 10 ms


def sound_seconds(samples: np.ndarray, sample_rate: int, top_db: float) -> float:
    """How long a signal (n,) sounds: its mean removed, the total duration of the SOUND_FRAME_S frames (every
    SOUND_HOP_S) whose RMS lies within `top_db` of the loudest frame's. Relative to the signal's own loudest
    frame, so the same at any gain."""
    frame, hop = round(SOUND_FRAME_S * sample_rate), round(SOUND_HOP_S * sample_rate)
    centred = samples.astype(np.float64) - samples.mean()
    energy = np.concatenate([[0.0], np.cumsum(np.square(centred))])  # energy[i]: of the first i samples
    starts = np.arange(0, max(1, len(centred) - frame + 1), hop)  # (n_frames,)
    ends = np.minimum(starts + frame, len(centred))
    rms_db = 10.0 * np.log10(np.maximum((energy[ends] - energy[starts]) / frame, 1e-20))
    return float((rms_db > rms_db.max() - top_db).sum()) * hop / sample_rate


def pad_or_trim(samples: np.ndarray, n_samples: int) -> np.ndarray:
    """Zero-pad at the end, or cut the end, to exactly `n_samples` samples."""
    if samples.shape[-1] >= n_samples:
        return samples[..., :n_samples]
    padded = np.zeros((*samples.shape[:-1], n_samples), dtype=samples.dtype)
    padded[..., : samples.shape[-1]] = samples
    return padded


def prepare(samples: np.ndarray, audio: AudioParams) -> np.ndarray:
    """A decoded clip as the front end wants it: silence trimmed, then exactly `audio.duration` long."""
    return pad_or_trim(trim_silence(samples, audio.trim_db), audio.clip_samples)


def htk_mel(hz: np.ndarray | float) -> np.ndarray:
    """The HTK mel scale: m(f) = 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def htk_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_edges(sample_rate: int, melspec: MelspecParams) -> np.ndarray:
    """The n_mels + 2 edges (Hz) of the mel filters, evenly spaced in HTK mel from fmin to fmax; band i
    peaks at edge i + 1."""
    fmax = sample_rate / 2 if melspec.fmax is None else melspec.fmax
    return htk_mel_to_hz(np.linspace(htk_mel(melspec.fmin), htk_mel(fmax), melspec.n_mels + 2))


def mel_filters(sample_rate: int, melspec: MelspecParams) -> np.ndarray:
    """Triangular filters on the HTK mel scale, peak 1, no area normalisation: (n_mels, n_fft//2 + 1).

    librosa.filters.mel(htk=True, norm=None), step for step (tests check they agree): n_mels + 2 edges
    evenly spaced in mel from fmin to fmax; filter i rises from edge i to 1 at edge i + 1 and falls to edge
    i + 2. Written out, as trim_silence, because importing librosa.filters is slow in every process.
    """
    fft_hz = np.linspace(0.0, sample_rate / 2, 1 + melspec.n_fft // 2)  # (n_bins,)
    edges = mel_edges(sample_rate, melspec)  # (n_mels + 2,)
    widths = np.diff(edges)  # (n_mels + 1,)
    ramps = edges[:, None] - fft_hz[None, :]  # (n_mels + 2, n_bins)
    rising = -ramps[:-2] / widths[:-1, None]  # (n_mels, n_bins)
    falling = ramps[2:] / widths[1:, None]
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


# Windows numpy computes (symmetric; the periodic "fftbins" window of length n is the symmetric one of n + 1
# without its last sample). Any other scipy.signal window name goes to scipy, imported only then.
NUMPY_WINDOWS = {"hann": np.hanning, "hamming": np.hamming, "blackman": np.blackman, "bartlett": np.bartlett}


def stft_window(name: str, n_fft: int) -> np.ndarray:
    """The periodic analysis window `name` of n_fft samples, as librosa.filters.get_window(fftbins=True)."""
    if name in NUMPY_WINDOWS:
        return NUMPY_WINDOWS[name](n_fft + 1)[:-1]
    import scipy.signal  # slow to import: only for the windows numpy lacks

    return scipy.signal.get_window(name, n_fft, fftbins=True)


class LogMel(torch.nn.Module):
    """Waveforms (B, n_samples) -> log-mel spectrograms in dB (B, n_mels, n_frames), batched on any device.

    Pre-emphasis, centred framing with zero padding, window, |FFT|^2, mel filter bank, 10 log10, and an
    optional per-clip floor `top_db` below the clip's maximum: librosa.feature.melspectrogram followed by
    power_to_db(ref=1.0) when pre-emphasis is off.
    """

    def __init__(self, config: FrontEndConfig):
        super().__init__()
        self.melspec = melspec = config.melspec
        window = stft_window(melspec.window, melspec.n_fft).astype(np.float32)  # (n_fft,)
        self.register_buffer("window", torch.from_numpy(window), persistent=False)
        filters = mel_filters(config.audio.sample_rate, melspec)
        self.register_buffer("filters", torch.from_numpy(filters), persistent=False)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        config = self.melspec
        x = waveforms.float()  # (B, n)
        if config.preemphasis is not None:  # y[0] = x[0], y[t] = x[t] - a x[t-1]
            emphasised = torch.empty_like(x)
            emphasised[:, 0] = x[:, 0]
            torch.sub(x[:, 1:], x[:, :-1], alpha=config.preemphasis, out=emphasised[:, 1:])
            x = emphasised
        spectrum = torch.stft(
            x,
            config.n_fft,
            config.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # (B, n_fft//2 + 1, n_frames)
        # in place where possible: fewer temporaries of the (B, F, T) spectrum
        power = spectrum.real.square().addcmul_(spectrum.imag, spectrum.imag)  # |X|^2
        mel = self.filters @ power  # (B, n_mels, n_frames)
        db = mel.clamp_min_(AMIN).log10_().mul_(10.0)
        if config.top_db is not None:
            db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - config.top_db)
        return db


def log_mel_spectrogram(waveforms: np.ndarray, config: FrontEndConfig) -> np.ndarray:
    """NumPy convenience over LogMel on the CPU: (B, n) or (n,) -> (B, n_mels, n_frames) or (n_mels, n_frames)."""
    batch = torch.from_numpy(np.atleast_2d(np.asarray(waveforms, dtype=np.float32)))
    with torch.inference_mode():
        out = LogMel(config)(batch).numpy()
    return out if np.ndim(waveforms) == 2 else out[0]


def reference_log_mel(samples: np.ndarray, config: FrontEndConfig) -> np.ndarray:
    """The log-mel of a prepared clip (n_samples,) computed by librosa, in the clip's dtype: (n_mels, n_frames).

    What LogMel is tested against (within 0.01 dB without pre-emphasis) and benchmarked against; librosa is
    imported here only.
    """
    import librosa

    melspec = config.melspec
    if melspec.preemphasis is not None:  # as LogMel: the first sample is kept as it is
        samples = np.concatenate([samples[:1], samples[1:] - melspec.preemphasis * samples[:-1]])
    power = librosa.feature.melspectrogram(
        y=samples,
        sr=config.audio.sample_rate,
        n_fft=melspec.n_fft,
        hop_length=melspec.hop_length,
        window=melspec.window,
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=melspec.n_mels,
        fmin=melspec.fmin,
        fmax=melspec.fmax,
        htk=True,
        norm=None,
    )
    return librosa.power_to_db(power, ref=1.0, amin=AMIN, top_db=melspec.top_db)
